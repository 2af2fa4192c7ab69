"""Fine-tuning on the Hugging Face Trainer: strategies, run layout and callbacks.

:func:`tuneyard.train.recipe.prepare_finetune` loads the data and the model, applies
a strategy and opens the run folder; :meth:`PreparedFinetune.train` hands everything
to the Trainer. :func:`finetune` does both.
"""

from tuneyard.train.options import FinetuneOptions, LoraOptions

__all__ = ["FinetuneOptions", "LoraOptions", "finetune"]


def finetune(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See :func:`tuneyard.train.recipe.finetune` (imported lazily: it pulls in torch)."""
    from tuneyard.train.recipe import finetune as run_finetune

    return run_finetune(*args, **kwargs)

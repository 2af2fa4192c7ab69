"""``adapter``: bottleneck adapters in every block; only they and the task's head train.

Which implementation runs depends on what the model's blocks offer, read from the model:

* **transformers' own attention adapters** where every block has the slot for one (an
  ``adapter_layer`` attribute): the pre-LayerNorm ("stable layer norm") encoder layers of
  Wav2Vec2, HuBERT, UniSpeech(-SAT), as in wav2vec2-large / hubert-large / MMS. Setting
  the config's ``adapter_attn_dim`` is how transformers builds them (the MMS adapters:
  LayerNorm, down-projection, ReLU, up-projection, added to the block's output); this
  strategy sets it on the loaded model and puts one in each slot, so the saved run is a
  plain model folder whose config rebuilds them when it loads. Their ReLU makes them
  non-linear: ``tuneyard merge`` refuses such a run (it is a complete model already).
* **PEFT LoRA on the blocks' MLP layers**, rank ``--adapter-dim``, everywhere else
  (Whisper's encoder, post-LayerNorm Wav2Vec2/HuBERT such as the ``-base`` models, text
  models). PEFT has no bottleneck-adapter method (AdapterHub's ``adapters`` has, but needs
  an older transformers than the one tuneyard pins); LoRA on the MLP is a linear
  bottleneck (down to ``--adapter-dim``, up again, added to the residual stream) at the
  place a bottleneck adapter sits, without its ReLU, so it merges like any LoRA run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuneyard.components.heads import parameters_under, train_only
from tuneyard.models.layout import ATTENTION_ADAPTER_DIM
from tuneyard.train.strategies import lora

if TYPE_CHECKING:
    from torch import nn

    from tuneyard.models.layout import ModelLayout
    from tuneyard.task_types.base import TaskType
    from tuneyard.train.options import FinetuneOptions

NAME = "adapter"
DEFAULT_LEARNING_RATE = 1e-3  # the rate MMS trains its adapters with, from a near-identity start
SLOT = "adapter_layer"  # the attribute transformers' adapter-capable encoder layers hold their adapter in


def adapter_slots(model: nn.Module, layout: ModelLayout) -> list[nn.Module]:
    """The model's blocks when every one has a slot for transformers' attention adapter, else []."""
    blocks = list(model.get_submodule(layout.blocks))
    return blocks if blocks and all(hasattr(block, SLOT) for block in blocks) else []


def apply(model: nn.Module, options: FinetuneOptions, layout: ModelLayout, task_type: TaskType) -> nn.Module:
    """Put adapters of width ``--adapter-dim`` in every block; freeze all but them and the head."""
    blocks = adapter_slots(model, layout)
    if not blocks:
        return lora.apply(model, mlp_lora_options(options), layout, task_type)
    add_attention_adapters(model, blocks, options.adapter.dim)
    adapters = {name for name, _ in model.named_parameters() if f".{SLOT}." in name}
    train_only(model, adapters | parameters_under(model, task_type.model.head_modules(model)))
    return model


def add_attention_adapters(model: nn.Module, blocks: list[nn.Module], dim: int) -> None:
    """One freshly initialised transformers attention adapter per block, recorded in the config.

    The adapter class is the one the block's own constructor builds for a config with
    ``adapter_attn_dim`` (built once, from a throwaway block), and its weights start the
    way the model initialises its own (``_init_weights``: small normal weights, so each
    adapter starts near the identity).
    """
    import copy

    config = copy.deepcopy(model.config)  # type: ignore[attr-defined]
    setattr(config, ATTENTION_ADAPTER_DIM, dim)
    adapter_class = type(getattr(type(blocks[0])(config), SLOT))
    reference = next(blocks[0].parameters())
    for block in blocks:
        adapter = adapter_class(config)
        adapter.apply(model._init_weights)  # type: ignore[operator]
        setattr(block, SLOT, adapter.to(device=reference.device, dtype=reference.dtype))
    setattr(model.config, ATTENTION_ADAPTER_DIM, dim)  # type: ignore[attr-defined]


def mlp_lora_options(options: FinetuneOptions) -> FinetuneOptions:
    """``options`` as ``--strategy lora`` reads them: rank ``--adapter-dim`` on every block's MLP layers.

    The scale (alpha / r) is LoRA's default ratio of 2.
    """
    dim = options.adapter.dim
    mlp = {"r": dim, "alpha": 2 * dim, "targets": ["mlp"], "layers": None}
    return options.model_copy(update={"lora": options.lora.model_copy(update=mlp)})

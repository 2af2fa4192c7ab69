"""Whether a model can project only some positions to the vocabulary (transformers' ``logits_to_keep``).

A decoder's vocabulary projection is a large share of its forward pass (SmolLM2:
49,152 x 576, about a fifth), and many callers read a few positions of it: calibration
reads none, reference scoring only the answer's. transformers' decoders and
vision-language models take ``logits_to_keep`` (a count of last positions, or a boolean
mask of the positions to keep); other models are called as they are.
"""

from __future__ import annotations

import inspect
from typing import Any


def takes_logits_to_keep(model: Any) -> bool:
    """Whether ``model``'s forward takes ``logits_to_keep``, PEFT wrappers looked through.

    A PEFT model passes its keyword arguments on to the model it wraps; prompt learning
    prepends virtual tokens, which shifts every position, so it is called as it is.
    """
    adapter = getattr(model, "active_peft_config", None)
    if adapter is not None:
        if adapter.is_prompt_learning:
            return False
        model = model.get_base_model()
    return "logits_to_keep" in inspect.signature(model.forward).parameters

"""Decoder language models (LLaMA family, GPT-2) and their chat-formatting tokenizers.

A causal LM trains, evaluates and generates as ``AutoModelForCausalLM`` with its
tokenizer's chat template; a tokenizer without one takes the task's
``--chat-template`` file. The pad token defaults to the end-of-sequence token, as the
field does for decoders.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import ModelError
from tuneyard.models.loading import ensure_padding_token, transformers_errors_only

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tuneyard.data.tasks import TaskSpec
    from tuneyard.models.checkpoint import StartingCheckpoint
    from tuneyard.task_types.base import CompressionSubject, LoadSettings


def with_chat_template(tokenizer: Any, spec: TaskSpec | None, source: str) -> Any:
    """``tokenizer`` with the task's template (if given) or its own; refuse one that has neither."""
    if spec is not None and spec.chat_template:
        tokenizer.chat_template = spec.chat_template
    if not tokenizer.chat_template:
        raise ModelError(
            f"the tokenizer of {source} has no chat template, so chat rows cannot be formatted.",
            "Pass --chat-template FILE (a Jinja template, e.g. ChatML's), or start from an instruct model.",
        )
    return tokenizer


def load_tokenizer_plain(source: str) -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer with a pad token (the end-of-sequence token where it has none)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"checkpoint {source} has no loadable tokenizer: {exc}",
            "Save the tokenizer next to the model (tokenizer.save_pretrained(folder)).",
        ) from exc
    ensure_padding_token(tokenizer)
    return tokenizer


def load_tokenizer(source: str, spec: TaskSpec | None) -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer with a pad token and a chat template."""
    return with_chat_template(load_tokenizer_plain(source), spec, source)


def is_decoder(model_type: str) -> bool:
    """Whether transformers has a causal-LM class for ``model_type`` and no masked-LM one.

    BERT-like encoders also have a causal-LM head class (``BertLMHeadModel``), but they
    are masked language models first; decoders (LLaMA, Qwen, GPT-2 ...) have no masked-LM class.
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    return (
        model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )


def check_decoder(parent: StartingCheckpoint) -> None:
    """Refuse a checkpoint that is no decoder language model (an encoder, a speech model)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    if parent.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise ModelError(
            f"{parent.source} is a {parent.arch} vision-language model, and these chat rows have no images.",
            "Give it rows with images (their user turns hold {'type': 'image'} parts and an 'images' "
            "column, or an image column), or train a text decoder on text-only rows.",
        )
    if not is_decoder(parent.model_type):
        raise ModelError(
            f"{parent.source} is a {parent.arch} model, not a decoder language model.",
            "Chat data trains decoders (LLaMA, SmolLM2, GPT-2); choose a decoder checkpoint.",
        )


def load_model(parent: StartingCheckpoint, seed: int, settings: LoadSettings) -> PreTrainedModel:
    """The checkpoint as ``AutoModelForCausalLM``, its weights as ``settings`` say (``--dtype``).

    A compressed decoder keeps its low-rank layers (``--strategy lowrank`` trains them).
    """
    from transformers import AutoModelForCausalLM, set_seed

    from tuneyard.models.dtypes import torch_dtype

    check_decoder(parent)
    set_seed(seed)
    if parent.compressed:
        from tuneyard.models.compressed_folder import load_compressed_folder

        return load_compressed_folder(Path(parent.source)).to(torch_dtype(settings.dtype)).train()
    with transformers_errors_only():
        return AutoModelForCausalLM.from_pretrained(parent.source, **settings.pretrained_kwargs())


def load_for_compression(model_id: str, spec: TaskSpec | None) -> CompressionSubject:
    """A decoder to compress, in float32, with its tokenizer (and the task's chat template, if given).

    Its head is the pretrained language-model head (often tied to the embeddings); it stays dense.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from tuneyard.models.loading import load_config
    from tuneyard.task_types.base import CompressionSubject

    config = load_config(model_id)
    if not is_decoder(config.model_type):
        raise ModelError(
            f"{model_id} is a {config.model_type} model, not a decoder language model.",
            "Compress it with classification data (a text and label column), or choose a decoder.",
        )
    tokenizer = load_tokenizer_plain(model_id)
    if spec is not None and spec.chat_template:
        tokenizer.chat_template = spec.chat_template
    with transformers_errors_only():
        decoder = AutoModelForCausalLM.from_pretrained(model_id, dtype=torch.float32)
    return CompressionSubject(decoder.eval(), tokenizer, "pretrained")


def load_adapter_base(base: Path | str, adapter: Path) -> Any:
    """The base model a causal-LM LoRA adapter goes onto."""
    import torch
    from transformers import AutoModelForCausalLM

    with transformers_errors_only():
        return AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)


def load_for_eval(folder: Path, device: torch.device) -> tuple[Any, Any]:
    """Model (on ``device``) and tokenizer of a decoder folder (a LoRA run's adapter onto its base).

    The chat template is the task's business: chat rows check for one (:func:`with_chat_template`).
    """
    from tuneyard.task_types.model_loading import load

    model = load(folder)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not hasattr(inner, "generate") or type(inner).__name__.endswith("ForSequenceClassification"):
        raise ModelError(
            f"{folder} holds a {type(inner).__name__}, which is not a language model.",
            "Evaluate a causal LM (tuneyard finetune on chat data produces one).",
        )
    return model.to(device), load_tokenizer_plain(str(folder))

"""The family table: per architecture, which linear layers matter and how layers count.

One source of truth read by ``compress`` (which layers may be factorised), ``finetune``
(default LoRA targets, ``--lora-layers`` numbering) and ``report`` (weight plots).
Names are module-name suffixes as they appear in ``model.named_modules()`` of the
transformers classes; the layer number is the integer after ``layers_pattern``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tuneyard.errors import ModelError


@dataclass(frozen=True)
class Family:
    """How one architecture is laid out."""

    arch: str
    layers_pattern: str
    attention: tuple[str, ...]
    ffn: tuple[str, ...]
    lora_targets: tuple[str, ...]

    @property
    def compressible(self) -> tuple[str, ...]:
        """Module-name suffixes of the linear layers SVD may factorise."""
        return self.attention + self.ffn

    def layer_number(self, module_name: str) -> int | None:
        """The transformer layer a module belongs to, or None (embeddings, head)."""
        match = re.search(rf"(?:^|\.){re.escape(self.layers_pattern)}\.(\d+)\.", module_name)
        return int(match.group(1)) if match else None

    def module_type(self, module_name: str) -> str | None:
        """``attn`` or ``ffn`` for a compressible module, else None."""
        if any(_ends_with(module_name, suffix) for suffix in self.attention):
            return "attn"
        if any(_ends_with(module_name, suffix) for suffix in self.ffn):
            return "ffn"
        return None


def _ends_with(module_name: str, suffix: str) -> bool:
    return module_name == suffix or module_name.endswith("." + suffix)


_BERT_ATTENTION = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
)
_BERT_FFN = ("intermediate.dense", "output.dense")
_LLAMA_ATTENTION = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
_LLAMA_FFN = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
_SPEECH_ATTENTION = ("attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.out_proj")
_SPEECH_FFN = ("feed_forward.intermediate_dense", "feed_forward.output_dense")

FAMILIES: dict[str, Family] = {
    family.arch: family
    for family in (
        # BERT's FFN output is "layer.N.output.dense"; the attention output is
        # "attention.output.dense", listed first so module_type() says attn for it.
        Family("bert", "layer", _BERT_ATTENTION, _BERT_FFN, ("query", "key", "value", "dense")),
        Family("roberta", "layer", _BERT_ATTENTION, _BERT_FFN, ("query", "key", "value", "dense")),
        Family("modernbert", "layers", ("attn.Wqkv", "attn.Wo"), ("mlp.Wi", "mlp.Wo"), ("Wqkv", "Wo", "Wi")),
        Family(
            "gpt2",
            "h",
            ("attn.c_attn", "attn.c_proj"),
            ("mlp.c_fc", "mlp.c_proj"),
            ("c_attn", "c_proj", "c_fc"),
        ),
        Family(
            "llama",
            "layers",
            _LLAMA_ATTENTION,
            _LLAMA_FFN,
            ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        ),
        Family(
            "whisper",
            "layers",
            ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"),
            ("fc1", "fc2"),
            ("q_proj", "k_proj", "v_proj", "out_proj"),
        ),
        Family(
            "wav2vec2", "layers", _SPEECH_ATTENTION, _SPEECH_FFN, ("q_proj", "k_proj", "v_proj", "out_proj")
        ),
        Family(
            "hubert", "layers", _SPEECH_ATTENTION, _SPEECH_FFN, ("q_proj", "k_proj", "v_proj", "out_proj")
        ),
        Family(
            "smolvlm",
            "layers",
            _LLAMA_ATTENTION,
            _LLAMA_FFN,
            ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        ),
    )
}

MODEL_TYPE_TO_ARCH = {"idefics3": "smolvlm", "smolvlm": "smolvlm"}


def family_for(arch_or_model_type: str) -> Family:
    """The family for an arch name or a config ``model_type``; lists the known ones if absent."""
    arch = MODEL_TYPE_TO_ARCH.get(arch_or_model_type, arch_or_model_type)
    if arch not in FAMILIES:
        known = ", ".join(sorted(FAMILIES))
        raise ModelError(
            f"architecture {arch_or_model_type!r} is not in tuneyard's family table.",
            f"Supported: {known}.",
        )
    return FAMILIES[arch]

"""Shared parts of "a chat model over some input": prompts in, answers generated token by token.

Its logits range over a vocabulary; there is no head of its own to train or save
whole (the output layer is the pretrained one, often tied to the embeddings); a probe
for merge's check is one short conversation through the chat template. The causal LM
builds on these, and so can a vision-language chat model.
"""

from __future__ import annotations

from typing import Any

from tuneyard.task_types.base import PROBE_TEXT, ModelRole


class ChatModel(ModelRole):
    """Model-role parts every ``...ForCausalLM``-like chat model shares."""

    peft_task_type = "CAUSAL_LM"

    def output_space(self, model: Any) -> str:
        return f"a vocabulary of {model.config.vocab_size} tokens"

    def probe_inputs(self, tokenizer: Any) -> dict[str, Any]:
        return dict(tokenizer(PROBE_TEXT, return_tensors="pt"))

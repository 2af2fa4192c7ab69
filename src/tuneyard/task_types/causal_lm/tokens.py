"""One chat row as tokens, the way TRL's ``SFTTrainer`` tokenizes prompt-completion rows.

The prompt is rendered with the generation prompt, the conversation with the answer
after it; the answer starts where the two token sequences diverge (TRL's
``common_prefix_length``: some templates render a prompt alone differently). Length
checks before training and reference scoring in eval use this, so they count exactly
the tokens training sees.
"""

from __future__ import annotations

from typing import Any

Messages = list[dict[str, str]]


def chat_tokens(tokenizer: Any, prompt: Messages, completion: Messages) -> tuple[list[int], int]:
    """``(token ids of prompt + completion, index of the first answer token)``."""
    from trl.data_utils import common_prefix_length

    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True)
    full_ids = tokenizer.apply_chat_template(prompt + completion, return_dict=True)["input_ids"]
    return full_ids, common_prefix_length(prompt_ids["input_ids"], full_ids)

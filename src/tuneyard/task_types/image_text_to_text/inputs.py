"""Image-chat rows as model inputs: the one place text and images become tensors.

Prompts go through the processor's chat template (with the generation prompt); a
training row is its prompt's inputs followed by its answer's tokens, with labels on the
answer only. Every verb builds its inputs here and every image goes through
:func:`.preprocess.model_inputs` with the run's ``--image-preprocess``, so training,
evaluation, generation and export validation give the model the same pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneyard.errors import ModelError
from tuneyard.task_types.image_text_to_text.preprocess import model_inputs

if TYPE_CHECKING:
    from datasets import Dataset

IGNORED = -100  # the label of a token the loss skips


def render(processor: Any, messages: list[dict[str, Any]], answer_follows: bool) -> str:
    """``messages`` through the chat template; with ``answer_follows``, ending in the assistant's cue."""
    text: str = processor.apply_chat_template(messages, add_generation_prompt=answer_follows, tokenize=False)
    return text


def prompt_texts(processor: Any, rows: Dataset) -> list[str]:
    """Each row's prompt as the model sees it, ready for the assistant's answer."""
    return [render(processor, prompt, True) for prompt in rows["prompt"]]


def answer_text(processor: Any, prompt: list[dict[str, Any]], completion: list[dict[str, Any]]) -> str:
    """What the template writes after the prompt's assistant cue for ``completion`` (its end-of-turn too)."""
    cue = render(processor, prompt, True)
    whole = render(processor, prompt + completion, False)
    if not whole.startswith(cue):
        raise ModelError(
            "the chat template renders the assistant's answer so that the prompt with its assistant "
            "cue is not a prefix of the whole conversation, so the answer's tokens cannot be found.",
            "Use a template whose generation prompt is how an assistant turn begins (SmolVLM's, ChatML).",
        )
    return whole[len(cue) :]


def prompt_inputs(processor: Any, texts: list[str], images: list[list[Any]], preprocess: str) -> Any:
    """Prompts and their images as model inputs, padded on the left (decoders continue from the end)."""
    return model_inputs(processor, texts, images, preprocess, padding_side="left", add_special_tokens=False)


def training_inputs(processor: Any, rows: list[dict[str, Any]], preprocess: str) -> dict[str, Any]:
    """Rows (``prompt``, ``completion``, ``images``) as inputs with labels on the answers' tokens only."""
    import torch
    from trl.trainer.utils import flush_left

    prompts = [render(processor, row["prompt"], True) for row in rows]
    answers = [answer_text(processor, row["prompt"], row["completion"]) for row in rows]
    inputs = prompt_inputs(processor, prompts, [row["images"] for row in rows], preprocess)
    tokenizer = processor.tokenizer
    answer = tokenizer(
        answers, add_special_tokens=False, padding=True, padding_side="right", return_tensors="pt"
    )
    input_ids = torch.cat((inputs["input_ids"], answer["input_ids"]), dim=1)
    attention = torch.cat((inputs["attention_mask"], answer["attention_mask"]), dim=1)
    learned = torch.cat((torch.zeros_like(inputs["attention_mask"]), answer["attention_mask"]), dim=1)
    attention, input_ids, learned = flush_left(attention, input_ids, learned)
    labels = input_ids.masked_fill(learned == 0, IGNORED)
    return {**inputs, "input_ids": input_ids, "attention_mask": attention, "labels": labels}


class ImageChatCollator:
    """The Trainer's collator: a batch of rows as :func:`training_inputs` (images processed per batch)."""

    def __init__(self, processor: Any, preprocess: str) -> None:
        self.processor = processor
        self.preprocess = preprocess

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return training_inputs(self.processor, rows, self.preprocess)


def answer_lengths(processor: Any, rows: Dataset) -> list[int]:
    """Tokens each row's answer takes to generate: up to and with its end-of-turn token."""
    tokenizer = processor.tokenizer
    lengths = []
    for prompt, completion in zip(rows["prompt"], rows["completion"], strict=True):
        ids = tokenizer(answer_text(processor, prompt, completion), add_special_tokens=False)["input_ids"]
        end = ids.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in ids else len(ids)
        lengths.append(end)
    return lengths


def row_lengths(processor: Any, rows: Dataset, preprocess: str) -> list[int]:
    """Each row's tokens with its image tokens and answer (what ``--max-length`` must hold)."""
    return [
        int(training_inputs(processor, [rows[index]], preprocess)["attention_mask"].sum())
        for index in range(len(rows))
    ]


def probe_inputs(processor: Any) -> dict[str, Any]:
    """One question about a real photograph (scikit-learn's bundled flower), as model inputs: merge
    compares the logits before and after on it, so the vision tower and connector are checked too."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    image = Image.fromarray(load_sample_image("flower.jpg")).resize((96, 64))
    prompt = [
        {
            "role": "user",
            "content": [{"type": "image", "text": None}, {"type": "text", "text": "What is this?"}],
        }
    ]
    return dict(prompt_inputs(processor, [render(processor, prompt, True)], [[image]], "processor"))

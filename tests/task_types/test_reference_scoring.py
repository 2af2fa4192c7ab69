"""The references' loss counts the answer tokens only, whatever the prompt and padding around them,
and the vocabulary projection runs at the positions that predict them, nowhere else."""

from __future__ import annotations

from typing import Any

import torch

import tuneyard
from tuneyard.task_types.causal_lm.scoring import answer_losses, padded_batch


def every_position_losses(model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The plain computation: every position's logits, the unlabelled ones ignored by the loss."""
    with torch.inference_mode():
        logits = model(**{key: value for key, value in inputs.items() if key != "labels"}).logits
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2).float(), inputs["labels"][:, 1:], ignore_index=-100, reduction="none"
    ).sum(1)


def head_rows(model: Any, inputs: dict[str, torch.Tensor]) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """``answer_losses`` of ``inputs``, with the number of positions each call of the LM head projected."""
    projected: list[int] = []
    head = model.get_output_embeddings()
    hook = head.register_forward_pre_hook(lambda _, args: projected.append(args[0].shape[:-1].numel()))
    try:
        losses, counts = answer_losses(model, inputs)
    finally:
        hook.remove()
    return projected, losses, counts


def test_answer_losses_equal_the_full_logits_ones_and_project_only_the_answer_positions(tiny_decoder) -> None:
    from peft import LoraConfig, get_peft_model

    model = tuneyard.load(tiny_decoder("llama"))
    inputs = padded_batch([[5, 6, 7, 8, 9], [5, 6, 7], [1, 2, 3, 4]], starts=[3, 1, 4], pad_token_id=0)
    adapted = get_peft_model(
        tuneyard.load(tiny_decoder("llama")),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    for scored in (model, adapted):  # a PEFT model passes logits_to_keep on to the model it wraps
        projected, losses, counts = head_rows(scored, inputs)
        assert projected == [4]  # 2 + 2 answer tokens; the prompts' and the padding's positions are skipped
        want = every_position_losses(scored, inputs)
        assert torch.allclose(losses, want, atol=1e-5), (losses, want)
        assert losses[2] == 0  # a row whose answer was cut off scores nothing
        assert counts.tolist() == [2, 2, 0]
    assert not torch.allclose(every_position_losses(adapted, inputs), every_position_losses(model, inputs))


def test_a_model_without_logits_to_keep_is_scored_from_every_position_the_same(tiny_decoder) -> None:
    """A plugin's decoder whose forward lacks ``logits_to_keep`` is called as it is."""
    model = tuneyard.load(tiny_decoder("llama"))

    class PlainDecoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder = model

        def get_output_embeddings(self) -> torch.nn.Module:
            return model.get_output_embeddings()

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
            return self.decoder(input_ids=input_ids, attention_mask=attention_mask)

    inputs = padded_batch([[5, 6, 7, 8, 9], [5, 6, 7]], starts=[3, 1], pad_token_id=0)
    projected, losses, counts = head_rows(PlainDecoder(), inputs)
    assert projected == [2 * 5] and counts.tolist() == [2, 2]
    assert torch.allclose(losses, every_position_losses(model, inputs), atol=1e-5)


def test_a_vision_language_models_answers_are_scored_at_their_positions_only(tiny_vlm, digit_images) -> None:
    """SmolVLM's architecture: the images' tokens sit inside the prompt, the answer after them."""
    from tuneyard.data.options import ColumnOptions
    from tuneyard.task_types.data_loading import load_task_data
    from tuneyard.task_types.image_text_to_text.inputs import training_inputs
    from tuneyard.task_types.image_text_to_text.model import load_processor

    model = tuneyard.load(tiny_vlm)
    rows = load_task_data(data_dir=digit_images, columns=ColumnOptions(image_question="What digit is this?"))
    batch = [rows.splits["validation"][index] for index in range(3)]
    inputs = training_inputs(load_processor(tiny_vlm), batch, "processor")
    projected, losses, counts = head_rows(model, inputs)
    assert projected == [int(counts.sum())] and counts.min() > 0
    want = every_position_losses(model, inputs)
    assert torch.allclose(losses, want, atol=1e-5), (losses, want)

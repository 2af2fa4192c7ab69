"""The references' loss counts the answer tokens only, whatever the prompt and padding around them."""

from __future__ import annotations

import torch

from tuneyard.task_types.causal_lm.scoring import answer_losses, padded_batch


def test_answer_losses_equal_the_cross_entropy_over_every_position_with_the_unlabelled_ignored() -> None:
    torch.manual_seed(0)
    batch = padded_batch([[5, 6, 7, 8, 9], [5, 6, 7], [1, 2, 3, 4]], starts=[3, 1, 4], pad_token_id=0)
    targets = batch["labels"][:, 1:]
    logits = torch.randn(3, targets.shape[1], 50)
    everywhere = torch.nn.functional.cross_entropy(
        logits.transpose(1, 2), targets, ignore_index=-100, reduction="none"
    ).sum(1)
    got = answer_losses(logits, targets)
    assert torch.allclose(got, everywhere, atol=1e-5), (got, everywhere)
    assert got[2] == 0  # a row whose answer was cut off scores nothing
    assert (targets != -100).sum(1).tolist() == [2, 2, 0]

"""``finetune --distill-from``: recovery that also learns a teacher's logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tuneyard.train.distillation import distillation_loss

QUICK = ("--epochs", "1", "--batch-size", "16", "--max-length", "32", "-q")


def tuneyard(*args: object) -> None:
    """Run the CLI in this process (module fixtures cannot use the function-scoped ``cli``)."""
    from tuneyard.cli import main

    try:
        main([str(arg) for arg in args])
    except SystemExit as done:
        assert done.code in (0, None)


@pytest.fixture(scope="module")
def teacher_and_student(tiny_model, topics, tmp_path_factory) -> tuple[Path, Path, Path]:  # type: ignore[no-untyped-def]
    """A yard with a tiny BERT fine-tuned on the topics (teacher) and its compressed copy (student)."""
    yard = tmp_path_factory.mktemp("distill_yard")
    dense = (
        "--checkpoint",
        tiny_model("bert"),
        "--data",
        topics,
        "--name",
        "dense",
        "--learning-rate",
        "1e-3",
    )
    tuneyard("--yard", yard, "finetune", *dense, *QUICK)
    teacher = yard / "models" / "finetuned" / "bert" / "full" / "dense" / "best"
    tuneyard("--yard", yard, "compress", "--model", teacher, "--method", "standard", "--rank", "4", "-q")
    (student,) = yard.glob("compressed_models/*")
    return yard, teacher, student


def test_the_soft_loss_is_zero_only_when_the_logits_agree() -> None:
    logits = torch.randn(8, 5)
    assert float(distillation_loss(logits, logits.clone(), temperature=2.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(distillation_loss(logits, torch.randn(8, 5), temperature=2.0)) > 0.01
    # Logits shifted by a constant are the same distribution.
    assert float(distillation_loss(logits, logits + 3.0, temperature=2.0)) == pytest.approx(0.0, abs=1e-6)


def prepared(yard: Path, checkpoint: Path, topics: Path, teacher: Path, weight: float):  # type: ignore[no-untyped-def]
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import prepare_finetune
    from tuneyard.yard.root import Yard

    options = FinetuneOptions(
        checkpoint=str(checkpoint), data=str(topics), distill_from=str(teacher), distill={"weight": weight},
        max_length=32, batch_size=16, output_dir=str(yard / f"scratch-{weight}"),
    )  # fmt: skip
    return prepare_finetune(options, Yard.open(yard))


def first_batch(run) -> tuple[object, dict[str, torch.Tensor]]:  # type: ignore[no-untyped-def]
    trainer = run.trainer()
    return trainer, next(iter(trainer.get_train_dataloader()))


def test_a_student_equal_to_its_teacher_has_nothing_to_learn_from_it(teacher_and_student, topics) -> None:
    yard, teacher, _ = teacher_and_student
    run = prepared(yard, teacher, topics, teacher, weight=1.0)
    trainer, batch = first_batch(run)
    run.model.train()
    for module in run.model.modules():  # dropout off, as in the teacher: both compute the same logits
        if isinstance(module, torch.nn.Dropout):
            module.eval()
    assert float(trainer.compute_loss(run.model, batch).detach()) == pytest.approx(0.0, abs=1e-5)


def test_every_low_rank_factor_gets_a_gradient_from_the_teacher(teacher_and_student, topics) -> None:
    from tuneyard.models.lowrank import lowrank_layers

    yard, teacher, student = teacher_and_student
    run = prepared(yard, student, topics, teacher, weight=1.0)  # the teacher's term alone
    trainer, batch = first_batch(run)
    run.model.train()
    loss = trainer.compute_loss(run.model, batch)
    assert float(loss.detach()) > 0  # rank 4 does not reproduce the teacher
    loss.backward()
    layers = dict(lowrank_layers(run.model))
    assert len(layers) == 12  # 6 projections x 2 layers
    for name, layer in layers.items():
        for factor in (layer.left, layer.right):
            assert factor.grad is not None and float(factor.grad.abs().sum()) > 0, name


def test_recovery_with_a_teacher_files_it_and_its_cost(cli, teacher_and_student, topics) -> None:
    yard, teacher, student = teacher_and_student
    args = (
        "--checkpoint",
        student,
        "--data",
        topics,
        "--distill-from",
        teacher,
        "--distill-temperature",
        "3",
    )
    result = cli("--yard", yard, "finetune", *args, "--name", "distilled", *QUICK)
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((Path(result.stdout.strip().splitlines()[-1]) / "manifest.json").read_text())
    assert manifest["config"]["distill_from"] == str(teacher)
    assert manifest["config"]["distill"] == {"weight": 0.5, "temperature": 3.0}
    assert [p["role"] for p in manifest["parents"]] == ["init", "teacher"]
    cost = manifest["metrics"]["distillation"]
    assert (
        cost["teacher_batches"] == manifest["training"]["step"] == 4
    )  # 64 rows / 16: one teacher pass per step
    assert cost["teacher_seconds"] > 0


def test_a_teacher_with_other_labels_is_refused(cli, tiny_model, teacher_and_student, topics) -> None:
    yard, _, student = teacher_and_student
    other = tiny_model("bert", num_labels=3)
    args = ("--checkpoint", student, "--data", topics, "--distill-from", other, "--name", "refused")
    result = cli("--yard", yard, "finetune", *args, *QUICK)
    assert result.exit_code == 2
    assert "predicts the labels ['LABEL_0', 'LABEL_1', 'LABEL_2']" in result.stderr
    assert "['cooking', 'sports']" in result.stderr
    assert not list(yard.glob("**/refused"))  # refused before a run folder exists


def test_causal_lms_cannot_distil_yet(cli, tiny_decoder, chat_topics, tmp_path) -> None:
    decoder = tiny_decoder("llama")
    args = ("--checkpoint", decoder, "--data", chat_topics, "--distill-from", decoder, "--name", "refused")
    result = cli("--yard", tmp_path, "finetune", *args, *QUICK)
    assert result.exit_code == 2 and "--distill-from is built for sequence classification" in result.stderr
    assert not list(tmp_path.glob("**/refused"))

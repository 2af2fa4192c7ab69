"""``finetune --distill-from``: recovery that also learns a teacher's logits (and hidden states).

Classifiers and causal LMs (token-level), the default teacher of a compressed checkpoint,
``--no-distill``, refusals.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tuneyard.components.distillation import distillation_loss, hidden_state_loss, label_positions

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


def test_the_hidden_state_term_is_relative_and_ignores_padding() -> None:
    teacher = tuple(torch.randn(2, 4, 3) for _ in range(3))  # embeddings + 2 layers
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    student = tuple(t.clone() for t in teacher)
    student[1][~mask] += 100.0  # padding positions: no effect
    student[0][mask] += 100.0  # the embeddings are not matched
    assert float(hidden_state_loss(student, teacher, mask)) == pytest.approx(0.0, abs=1e-6)
    doubled = (teacher[0], teacher[1] * 2, teacher[2] * 2)  # each layer off by its own size
    assert float(hidden_state_loss(doubled, teacher, mask)) == pytest.approx(1.0, rel=1e-5)


def test_a_causal_lm_is_distilled_where_a_label_is_predicted() -> None:
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, 7, 8, 9, 10]])
    expected = [[False, True, True, False, False], [True, True, True, True, False]]
    assert label_positions(labels).tolist() == expected


def prepared(yard: Path, checkpoint: Path, data: Path, teacher: Path, weight: float, hidden: float = 0.0):  # type: ignore[no-untyped-def]
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import prepare_finetune
    from tuneyard.yard.root import Yard

    options = FinetuneOptions(
        checkpoint=str(checkpoint), data=str(data), distill_from=str(teacher),
        distill={"weight": weight, "hidden_weight": hidden},
        max_length=32, batch_size=16, output_dir=str(yard / f"scratch-{weight}-{hidden}"),
    )  # fmt: skip
    return prepare_finetune(options, Yard.open(yard))


def no_dropout(model: torch.nn.Module) -> None:
    """Training mode without dropout, as in the teacher: both sides compute the same outputs."""
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.eval()


def assert_nothing_to_learn(run) -> None:  # type: ignore[no-untyped-def]
    """A run whose student equals its teacher: the teacher's terms of the first batch's loss are zero."""
    trainer, batch = first_batch(run)
    no_dropout(run.model)
    assert float(trainer.compute_loss(run.model, batch).detach()) == pytest.approx(0.0, abs=1e-5)


def first_batch(run) -> tuple[object, dict[str, torch.Tensor]]:  # type: ignore[no-untyped-def]
    trainer = run.trainer()
    return trainer, next(iter(trainer.get_train_dataloader()))


def test_a_student_equal_to_its_teacher_has_nothing_to_learn_from_it(teacher_and_student, topics) -> None:
    yard, teacher, _ = teacher_and_student
    assert_nothing_to_learn(prepared(yard, teacher, topics, teacher, weight=1.0))
    assert_nothing_to_learn(prepared(yard, teacher, topics, teacher, weight=1.0, hidden=1.0))


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
    assert manifest["config"]["distill"] == {"weight": 0.5, "temperature": 3.0, "hidden_weight": 0.0}
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


def run_manifest(result) -> dict:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.stderr
    return json.loads((Path(result.stdout.strip().splitlines()[-1]) / "manifest.json").read_text())  # type: ignore[no-any-return]


def test_a_compressed_fine_tuned_model_distils_from_it_by_default(cli, teacher_and_student, topics) -> None:
    yard, teacher, student = teacher_and_student
    base = ("--checkpoint", student, "--data", topics, *QUICK)
    loud = [arg for arg in base if arg != "-q"]  # notes are shown unless -q
    result = cli("--yard", yard, "finetune", *loud, "--name", "by_default", "--distill-hidden-weight", "0.5")
    manifest = run_manifest(result)
    shown = "".join(result.stderr.split())  # rich wraps long lines
    assert "".join(f"distilling from {teacher}, the fine-tuned model".split()) in shown, result.stderr
    assert manifest["config"]["distill_from"] == str(teacher)
    assert manifest["config"]["distill"]["hidden_weight"] == 0.5
    assert manifest["metrics"]["distillation"]["teacher_batches"] == 4
    labels_only = run_manifest(
        cli("--yard", yard, "finetune", *base, "--name", "labels_only", "--no-distill")
    )
    assert labels_only["config"]["distill_from"] is None and "distillation" not in labels_only["metrics"]
    assert [parent["role"] for parent in labels_only["parents"]] == ["init"]
    both = cli("--yard", yard, "finetune", *base, "--no-distill", "--distill-from", teacher, "--name", "both")
    assert both.exit_code == 2 and "--no-distill and --distill-from" in both.stderr


def test_a_model_compressed_from_a_pretrained_base_has_no_default_teacher(
    cli, tiny_model, topics, tmp_path
) -> None:
    cli(
        "--yard",
        tmp_path,
        "compress",
        "--model",
        tiny_model("bert"),
        "--method",
        "standard",
        "--rank",
        "4",
        "-q",
    )
    (student,) = tmp_path.glob("compressed_models/*")
    result = cli("--yard", tmp_path, "finetune", "--checkpoint", student, "--data", topics, *QUICK)
    manifest = run_manifest(result)
    assert manifest["config"]["distill_from"] is None and "distilling" not in result.stderr


def test_hidden_state_matching_needs_the_same_depth(cli, tiny_model, teacher_and_student, topics) -> None:
    yard, teacher, _ = teacher_and_student
    deeper = ("--checkpoint", tiny_model("bert", layers=4), "--data", topics, "--name", "deeper", *QUICK)
    cli("--yard", yard, "finetune", *deeper)
    other = yard / "models" / "finetuned" / "bert" / "full" / "deeper" / "best"
    args = ("--checkpoint", teacher, "--data", topics, "--distill-from", other, "--name", "refused_depth")
    result = cli("--yard", yard, "finetune", *args, "--distill-hidden-weight", "1", *QUICK)
    assert result.exit_code == 2 and "has 4 layers of width 32" in result.stderr
    assert "2 of width 32" in result.stderr and not list(yard.glob("**/refused_depth"))


@pytest.fixture(scope="module")
def decoder_pair(tiny_decoder, chat_topics, tmp_path_factory) -> tuple[Path, Path, Path]:  # type: ignore[no-untyped-def]
    """A tiny causal LM fine-tuned on chat rows (teacher) and its compressed copy (student)."""
    yard = tmp_path_factory.mktemp("distill_lm_yard")
    dense = ("--checkpoint", tiny_decoder("llama"), "--data", chat_topics, "--name", "dense_lm")
    tuneyard("--yard", yard, "finetune", *dense, "--learning-rate", "1e-3", *QUICK)
    (teacher,) = yard.glob("models/finetuned/*/full/dense_lm/best")
    tuneyard("--yard", yard, "compress", "--model", teacher, "--method", "standard", "--rank", "4", "-q")
    (student,) = yard.glob("compressed_models/*")
    return yard, teacher, student


def test_a_causal_lm_equal_to_its_teacher_has_nothing_to_learn_from_it(decoder_pair, chat_topics) -> None:
    yard, teacher, _ = decoder_pair
    assert_nothing_to_learn(prepared(yard, teacher, chat_topics, teacher, weight=1.0))


def test_a_compressed_causal_lm_learns_its_parents_tokens(cli, decoder_pair, chat_topics) -> None:
    from tuneyard.models.lowrank import lowrank_layers

    yard, teacher, student = decoder_pair
    run = prepared(yard, student, chat_topics, teacher, weight=1.0)
    trainer, batch = first_batch(run)
    run.model.train()
    loss = trainer.compute_loss(run.model, batch)
    loss.backward()
    for name, layer in lowrank_layers(run.model):
        assert layer.left.grad is not None and float(layer.left.grad.abs().sum()) > 0, name
    result = cli(
        "--yard", yard, "finetune", "--checkpoint", student, "--data", chat_topics, "--name", "lm", *QUICK
    )
    manifest = run_manifest(result)
    assert manifest["config"]["distill_from"] == str(teacher)
    assert manifest["metrics"]["distillation"]["teacher_batches"] == manifest["training"]["step"] == 2


def test_a_causal_teacher_with_another_vocabulary_is_refused(
    cli, decoder_pair, chat_topics, tmp_path
) -> None:
    from transformers import AutoModelForCausalLM

    _, teacher, student = decoder_pair
    other = tmp_path / "other_vocab"
    model = AutoModelForCausalLM.from_pretrained(teacher)
    model.resize_token_embeddings(model.config.vocab_size + 8)
    model.save_pretrained(other)
    args = ("--checkpoint", student, "--data", chat_topics, "--distill-from", other, "--name", "refused_lm")
    result = cli("--yard", tmp_path, "finetune", *args, *QUICK)
    assert result.exit_code == 2 and "a vocabulary of" in result.stderr
    assert not list(tmp_path.glob("**/refused_lm"))

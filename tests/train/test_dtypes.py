"""``--dtype``, ``--gradient-checkpointing`` and ``--strategy qlora`` on a CPU.

The GPU side (auto picking a checkpoint's half-precision dtype, QLoRA training) is in
``tests/gpu/test_qlora.py``.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
from safetensors import safe_open
from test_errors import assert_user_error, yard_artifacts
from transformers import TrainerCallback

QUICK = ("--epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3", "--max-length", "32", "--quiet")


def weight_dtypes(folder: Path, weights: str = "model.safetensors") -> set[str]:
    with safe_open(str(folder / weights), framework="pt") as handle:
        return {str(handle.get_slice(key).get_dtype()) for key in handle.keys()}  # noqa: SIM118


def finetuned(cli, yard: Path, *args: object) -> Path:  # type: ignore[no-untyped-def]
    result = cli("--yard", yard, "finetune", *args, *QUICK)
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def test_a_decoder_trains_in_bfloat16_on_the_cpu_and_saves_bfloat16_weights(
    cli, tiny_decoder, chat_topics, tmp_path
) -> None:
    run = finetuned(cli, tmp_path, "--checkpoint", tiny_decoder("llama"), "--data", chat_topics,
                    "--dtype", "bfloat16")  # fmt: skip
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["config"]["dtype"] == "bfloat16" and manifest["config"]["precision"] == "no"
    for folder in (run / "best", run / "last"):
        assert weight_dtypes(folder) == {"BF16"}
        assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"
    with open(run / "training_log.csv") as handle:
        losses = [float(row[key]) for row in csv.DictReader(handle) for key in ("train_loss", "val_loss")]
    assert losses and all(math.isfinite(loss) for loss in losses)


def test_auto_is_float32_on_the_cpu_whatever_the_checkpoint_holds(
    cli, tiny_decoder, chat_topics, tmp_path
) -> None:
    import shutil

    from transformers import AutoModelForCausalLM

    checkpoint = tmp_path / "bf16-lm"
    shutil.copytree(tiny_decoder("llama"), checkpoint)
    AutoModelForCausalLM.from_pretrained(checkpoint, dtype="bfloat16").save_pretrained(checkpoint)
    assert weight_dtypes(checkpoint) == {"BF16"}
    run = finetuned(cli, tmp_path, "--checkpoint", checkpoint, "--data", chat_topics, "--strategy", "full")
    assert json.loads((run / "manifest.json").read_text())["config"]["dtype"] == "float32"
    assert weight_dtypes(run / "best") == {"F32"}


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--dtype", "float16"), ("--dtype float16 cannot train on a CPU", "--dtype bfloat16")),
        (("--dtype", "float16", "--precision", "fp16"), ("cannot train weights loaded in float16",)),
        (("--strategy", "qlora"), ("needs a CUDA GPU with bitsandbytes", "no CUDA GPU", "--strategy lora",
                                   "pip install -e '.[qlora]'")),
    ],
)  # fmt: skip
def test_what_the_machine_cannot_train_is_refused_before_anything_is_written(
    cli, tiny_decoder, chat_topics, tmp_path, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    result = cli("--yard", tmp_path, "finetune", "--checkpoint", tiny_decoder("llama"), "--data", chat_topics,
                 *args, *QUICK)  # fmt: skip
    assert_user_error(result, *fragments)
    assert not yard_artifacts(tmp_path)


def test_qlora_of_a_compressed_model_is_refused(cli, tiny_decoder, chat_topics, tmp_path) -> None:
    compressed = cli("--yard", tmp_path, "compress", "--model", tiny_decoder("llama"), "--method", "standard",
                     "--rank", "4", "--data", chat_topics, "-q")  # fmt: skip
    assert compressed.exit_code == 0, compressed.stderr
    folder = compressed.stdout.strip().splitlines()[-1].removeprefix("saved ")
    result = cli("--yard", tmp_path, "finetune", "--checkpoint", folder, "--data", chat_topics,
                 "--strategy", "qlora", *QUICK)  # fmt: skip
    assert_user_error(result, "--strategy qlora quantizes a plain model's layers", "--strategy lowrank")
    assert not list((tmp_path / "models").glob("finetuned/**/manifest.json"))


class CheckpointingSeen(TrainerCallback):  # type: ignore[misc]
    """Records, at each step, whether the model being trained recomputes its activations."""

    def __init__(self) -> None:
        self.seen: list[bool] = []

    def on_step_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.seen.append(bool(inner.is_activation_checkpointing))


@pytest.mark.parametrize(("strategy", "checkpointing"), [("lora", True), ("full", True), ("lora", False)])
def test_gradient_checkpointing_is_on_while_the_model_trains_when_asked(
    tiny_decoder, chat_topics, tmp_path, strategy: str, checkpointing: bool
) -> None:
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import finetune
    from tuneyard.yard.root import Yard

    options = FinetuneOptions(
        checkpoint=str(tiny_decoder("llama")),
        data=str(chat_topics),
        strategy=strategy,
        gradient_checkpointing=checkpointing,
        epochs=1,
        batch_size=8,
        max_length=32,
    )
    seen = CheckpointingSeen()
    result = finetune(options, Yard.open(tmp_path), callbacks=[seen])
    assert seen.seen and set(seen.seen) == {checkpointing}  # off unless asked (TRL's default is on)
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["gradient_checkpointing"] is checkpointing
    assert math.isfinite(result.last_metrics["loss"])


def test_auto_follows_the_checkpoint_where_a_gpu_runs_it(tiny_decoder, tmp_path) -> None:
    """The GPU side of ``auto`` and of the refusals, given the machine's facts (this machine has no GPU)."""
    import shutil

    from tuneyard.errors import ConfigError
    from tuneyard.models.dtypes import check_trainable_dtype, resolve_load_dtype

    checkpoint = tmp_path / "bf16-lm"
    shutil.copytree(tiny_decoder("llama"), checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16"}))
    assert resolve_load_dtype("auto", checkpoint, on_gpu=True, gpu_has_bf16=True) == "bfloat16"
    assert resolve_load_dtype("auto", checkpoint, on_gpu=True, gpu_has_bf16=False) == "float32"
    assert resolve_load_dtype("auto", checkpoint, on_gpu=False, gpu_has_bf16=False) == "float32"
    assert resolve_load_dtype("float16", checkpoint, on_gpu=True, gpu_has_bf16=True) == "float16"
    with pytest.raises(ConfigError, match="needs a GPU with bfloat16 support") as refused:
        check_trainable_dtype("bfloat16", on_gpu=True, gpu_has_bf16=False, precision="no")
    assert refused.value.hint is not None and "--dtype float32 with --precision fp16" in refused.value.hint
    check_trainable_dtype("float16", on_gpu=True, gpu_has_bf16=False, precision="no")  # a GPU trains it

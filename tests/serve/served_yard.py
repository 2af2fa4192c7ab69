"""The small real yard the web view tests serve.

The yard holds a compressed model, four runs made from it (their accuracy differs), one
with a training log, the training curves tuneyard draws from it and a confusion matrix, and traps for the path
checks: a symlink inside an artifact that points out of the yard, and a secret file
beside the yard.
"""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneyard.components.confusion import plot_confusion_matrix
from tuneyard.report.curves import LOG_FILE, plot_training_curves
from tuneyard.yard import Manifest, Yard

SECRET = "top secret, outside the yard"
RUNS = (
    ("bert_lora_a", 0.91, 1e-4),
    ("bert_lora_b", 0.87, 3e-5),
    ("bert_full", 0.78, 2e-5),
    ("bert_frozen", 0.64, 1e-3),
)


@dataclass
class Served:
    """A running ``tuneyard serve``: its base URL, the yard behind it and the process."""

    url: str
    port: int
    yard: Yard
    process: subprocess.Popen

    def ids(self) -> dict[str, str]:
        """Artifact name -> id."""
        return {row["name"]: row["id"] for row in self.yard.query()}

    def base_id(self) -> str:
        """The compressed model every run was made from."""
        return str(self.yard.query(kind="compressed")[0]["id"])


def build_yard(root: Path) -> Yard:
    """Artifacts written through the yard's real writers, one real report, and the traps."""
    yard = Yard.open(root)
    base = Manifest(kind="compressed", name="x", arch="bert", method="fwsvd", rank=64, task="sst2",
                    metrics={"params": 20_000_000})  # fmt: skip
    with yard.create(
        base, yard.target_path("compressed", model="bert-base", method="fwsvd", rank=64)
    ) as writer:
        (writer.path / "model.safetensors").write_bytes(b"weights")
    base_folder = writer.final_path
    for step, (name, accuracy, lr) in enumerate(RUNS):
        run = Manifest(
            kind="finetuned", name=name, arch="bert", method="fwsvd", rank=64, task="sst2",
            strategy="lora" if "lora" in name else "full", config={"lr": lr, "epochs": 2},
            metrics={"sst2": {"accuracy": accuracy, "f1": accuracy - 0.02}},
            parents=[yard.parent_link(base_folder, "base")],
        )  # fmt: skip
        with yard.create(run, root / "outputs" / name) as writer:
            (writer.path / "adapter_model.safetensors").write_bytes(b"adapter" * (step + 1))
            if step == 0:
                (writer.path / LOG_FILE).write_text(
                    "epoch,step,train_loss,val_loss,lr,accuracy\n"
                    "1,10,0.70,0.66,1e-4,0.80\n2,20,0.52,0.49,5e-5,0.88\n3,30,0.41,0.45,1e-5,0.91\n"
                )
    first = root / "outputs" / RUNS[0][0]
    # The plots `tuneyard report` and `tuneyard eval` draw for a run, where they put them.
    (first / "report").mkdir()
    plot_training_curves(first / LOG_FILE, first / "report" / "bert_lora_a_training_curves.png", "curves")
    (first / "evaluation_results" / "sst2_validation").mkdir(parents=True)
    plot_confusion_matrix(
        np.array([[40, 6], [3, 51]]),
        ["negative", "positive"],
        first / "evaluation_results" / "sst2_validation" / "confusion_matrix.png",
        "sst2 validation",
    )
    (root.parent / "secret.txt").write_text(SECRET)
    os.symlink(root.parent / "secret.txt", first / "leak.txt")
    os.symlink(root.parent, first / "outside")
    return yard


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

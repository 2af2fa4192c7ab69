"""Audio classification at its edges, through the CLI: tables of audio paths, bad audio refused
by name, the eval files and audio throughput, grids of audio runs, and compression.

The spoken words and the tiny encoders are conftest.py's (``words``, ``audio_model``).
"""

from __future__ import annotations

import csv
import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from topic_data import write_topic_csvs

import tuneyard
from tuneyard.data.options import ColumnOptions
from tuneyard.task_types.data_loading import load_task_data

SPLITS = ("train", "validation", "test")
QUICK = ("--epochs", "1", "--batch-size", "8", "--max-seconds", "1", "-q")


def clips(words: Path, split: str) -> list[Path]:
    return sorted((words / split).rglob("*.wav"))


def write_table(folder: Path, rows: dict[str, list[tuple[str, str]]], column: str = "audio") -> Path:
    """``{split}.csv`` files of (audio path, label) rows."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, pairs in rows.items():
        with (folder / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([column, "label"])
            writer.writerows(pairs)
    return folder


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory, words: Path) -> Path:
    """The spoken words as CSV tables beside the audiofolder, with paths relative to the tables."""
    folder = tmp_path_factory.mktemp("table") / "spoken"
    relative = {
        split: [
            (f"../../{words.parent.name}/words/{p.relative_to(words)}", p.parent.name)
            for p in clips(words, split)
        ]
        for split in SPLITS
    }
    write_table(folder, relative)
    assert (folder / relative["train"][0][0]).resolve().is_file()  # relative to the table, not the cwd
    return folder


def saved(result) -> Path:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1].removeprefix("saved "))


def test_a_table_of_audio_paths_is_read_as_the_audiofolder_it_points_at(words, table, tmp_path) -> None:
    folder_rows = load_task_data(data_dir=words, columns=ColumnOptions(task_type="audio_classification"))
    from_table = load_task_data(data_dir=table)  # no --task-type: the audio column decides
    assert from_table.spec.task_type == "audio_classification"
    assert from_table.spec.label_names == folder_rows.spec.label_names == ("no", "stop", "yes")
    for split in SPLITS:
        assert from_table.splits[split]["label"] == folder_rows.splits[split]["label"], split

    # JSON Lines, absolute paths, and the audio in a column of another name (--audio-column).
    jsonl = tmp_path / "jsonl"
    jsonl.mkdir()
    for split in SPLITS:
        lines = [json.dumps({"clip": str(p), "label": p.parent.name}) for p in clips(words, split)]
        (jsonl / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    named = load_task_data(data_dir=jsonl, columns=ColumnOptions(audio_column="clip"))
    assert named.spec.task_type == "audio_classification"
    assert named.splits["test"]["label"] == folder_rows.splits["test"]["label"]
    from tuneyard.task_types.audio_classification.data import audio_sources

    assert audio_sources(named.splits["test"]) == [p.name for p in clips(words, "test")]


def test_eval_of_an_audio_model_writes_the_text_classifier_files_and_audio_seconds_per_second(
    cli, tmp_path, table, words, audio_model, tiny_model
) -> None:
    yard = tmp_path / "yard"
    run = saved(
        cli("--yard", yard, "finetune", "--checkpoint", audio_model("wav2vec2"), "--data", table, *QUICK)
    )
    evaluated = cli("--yard", yard, "eval", "--checkpoint", run / "best", "--data", table, "--split", "test")
    assert evaluated.exit_code == 0, evaluated.stderr
    assert "audio seconds per second" in evaluated.stderr
    (audio,) = (run / "evaluation_results").iterdir()

    topics = write_topic_csvs(tmp_path / "topics", ("sports", "cooking", "travel"), {"test": 12})
    text_args = ("--checkpoint", tiny_model("bert", num_labels=3), "--data", topics, "--split", "test")
    text = cli("--yard", yard, "eval", *text_args, "--output-dir", tmp_path / "text_eval")
    assert text.exit_code == 0, text.stderr
    (text_results,) = (tmp_path / "text_eval").iterdir()
    names = sorted(path.name for path in text_results.iterdir())
    assert sorted(path.name for path in audio.iterdir()) == names  # the same files as a text classifier's
    assert len(names) == 5

    def header(folder: Path, name: str) -> list[str]:
        return (folder / name).read_text().splitlines()[0].split(",")

    assert header(audio, "per_class_metrics.csv") == header(text_results, "per_class_metrics.csv")
    assert header(audio, "predictions.csv")[:5] == header(text_results, "predictions.csv")[:5]
    assert header(audio, "predictions.csv")[5:] == ["prob_no", "prob_stop", "prob_yes"]
    with (audio / "summary_metrics.csv").open() as handle:
        summary = {row["metric"]: float(row["value"]) for row in csv.DictReader(handle)}
    throughput = json.loads((audio / "metrics.json").read_text())["throughput"]
    assert throughput["audio_seconds_per_second"] == summary["audio_seconds_per_second"] > 0
    manifest = json.loads((run / "manifest.json").read_text())["metrics"][audio.name]
    assert manifest["audio_seconds_per_second"] == summary["audio_seconds_per_second"]

    # The audio counted is each clip's own, cropped to --max-seconds 1, padding not counted.
    from torchcodec.decoders import AudioDecoder

    heard = sum(
        min(AudioDecoder(str(p)).get_all_samples().duration_seconds, 1.0) for p in clips(words, "test")
    )
    assert summary["audio_seconds"] == pytest.approx(heard, abs=0.02)
    assert summary["audio_seconds_per_second"] == pytest.approx(heard / summary["seconds"], rel=0.01)
    assert heard < 36 * 1.0  # some clips are shorter than the window: padding would have counted 36 s

    # An unreadable clip in the split evaluated: refused by row, and no results folder is filed.
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF" + bytes(range(256)) * 8)
    one_each = [sorted((words / "test" / label).glob("*.wav"))[0] for label in ("no", "stop")]
    test_rows = [(str(p), p.parent.name) for p in one_each] + [(str(junk), "yes")]  # every label
    broken = write_table(tmp_path / "broken", {"test": test_rows})
    refused = cli("--yard", yard, "eval", "--checkpoint", run / "best", "--data", broken, "--split", "test")
    assert refused.exit_code == 2 and "test row 2 (junk.wav) could not be decoded as audio" in refused.stderr
    assert [path.name for path in (run / "evaluation_results").iterdir()] == [audio.name]


def test_bad_audio_rows_are_refused_by_row_with_the_fix_and_nothing_written(
    cli, tmp_path, words, audio_model
) -> None:
    train = clips(words, "train")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    rest = {split: [(str(p), p.parent.name) for p in clips(words, split)] for split in ("validation", "test")}
    yard = tmp_path / "yard"

    def finetune(data: Path, *extra: object):  # type: ignore[no-untyped-def]
        return cli(
            "--yard", yard, "finetune", "--checkpoint", audio_model("wav2vec2"), "--data", data, *extra
        )

    garbage_rows = {"train": [(str(train[0]), "no"), (str(junk), "yes")], **rest}
    garbage = write_table(tmp_path / "garbage", garbage_rows, column="clip")  # read as audio: --audio-column
    result = finetune(garbage, "--audio-column", "clip")
    assert result.exit_code == 2 and "error:" in result.stderr
    assert "train row 1 (junk.wav) could not be decoded as audio" in result.stderr
    assert "Remove or replace the file" in result.stderr and ".cpp" not in result.stderr

    missing = write_table(
        tmp_path / "missing", {"train": [(str(train[0]), "no"), ("gone.wav", "yes")], **rest}
    )
    result = finetune(missing)
    assert result.exit_code == 2 and "(train) row 1: audio file 'gone.wav' does not exist" in result.stderr
    assert "relative to the table file" in result.stderr

    # espeak-ng speaks at 22050 Hz and the extractor takes 16 kHz: refused under --no-resample.
    result = finetune(words, "--task-type", "audio_classification", "--no-resample")
    assert result.exit_code == 2 and "train row 0" in result.stderr
    assert "is sampled at 22050 Hz, the model's feature extractor takes 16000 Hz" in result.stderr
    assert "--no-resample" in result.stderr and "ffmpeg" in result.stderr
    assert not (yard / "models").exists()  # every refusal came before a run folder


def test_no_resample_takes_clips_already_at_the_models_rate(tmp_path, words, audio_model) -> None:
    from torchcodec.decoders import AudioDecoder
    from transformers import AutoFeatureExtractor

    from tuneyard.task_types.audio_classification.features import extract
    from tuneyard.task_types.audio_classification.options import AudioOptions

    rows = []
    for source in clips(words, "train")[:4]:
        samples = AudioDecoder(str(source), sample_rate=16000, num_channels=1).get_all_samples().data[0]
        target = tmp_path / source.name
        with wave.open(str(target), "wb") as out:
            out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
            out.writeframes((samples.clamp(-1, 1) * 32767).to(torch.int16).numpy().tobytes())
        rows.append((str(target), source.parent.name))
    data = load_task_data(data_dir=write_table(tmp_path / "at16k", {"train": rows, "validation": rows}))
    extractor = AutoFeatureExtractor.from_pretrained(audio_model("wav2vec2"))
    seconds = extract(data.splits["train"], extractor, AudioOptions(resample=False), "train")["clip_seconds"]
    assert len(seconds) == 4 and all(0.2 < s < 2 for s in seconds)


def test_a_grid_of_audio_runs_and_an_eval_grid_over_them(cli, tmp_path, table, audio_model) -> None:
    yard = tmp_path / "yard"
    spec = {
        "experiment": "speech",
        "finetuning": {
            "models": [str(audio_model("wav2vec2"))],
            "data": str(table),
            "strategies": ["full", "lora"],
            "epochs": 1,
            "batch_size": 8,
            "learning_rate": 2e-3,
            "options": {"task_options": {"max_seconds": 1}},
        },
        "evals": {"tasks": [str(table)], "split": "test"},
    }
    (tmp_path / "speech.yaml").write_text(yaml.safe_dump(spec))
    ran = cli("--yard", yard, "grid", tmp_path / "speech.yaml")
    assert ran.exit_code == 0, ran.stderr
    assert "ran 2 cell(s) of 2" in ran.stderr
    folder = yard / "experiments" / "speech"
    with (folder / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["strategy"] for row in rows} == {"full", "lora"} and {row["state"] for row in rows} == {
        "complete"
    }
    assert all(0 <= float(row["spoken"]) <= 1 for row in rows)

    runs = sorted((folder / "finetuned_checkpoints").iterdir())
    args = ("--models", *runs, "--tasks", table, "--experiment", "again", "--split", "test")
    again = cli("--yard", yard, "eval-grid", *args)
    assert again.exit_code == 0, again.stderr
    results = json.loads((yard / "experiments" / "again" / "eval_grid_results.json").read_text())
    assert len(results["cells"]) == 2


@pytest.mark.parametrize(
    ("family", "method"),
    [
        ("wav2vec2", ("--method", "standard")),
        ("whisper", ("--method", "standard")),
        ("wav2vec2", ("--method", "whiten")),
    ],
    ids=["wav2vec2-standard", "whisper-standard", "wav2vec2-whiten"],
)
def test_compression_at_half_of_an_audio_classifier_reloads_as_its_factors_product(
    cli, tmp_path, table, audio_model, family, method
) -> None:
    from tuneyard.task_types import get_task_type

    checkpoint = audio_model(family)
    data = ("--data", table, "--calib-samples", "16") if "whiten" in method else ()
    compressed = saved(
        cli(
            "--yard", tmp_path, "compress", "--checkpoint", checkpoint, *method, "--ratio", "0.5", *data, "-q"
        )
    )
    info = json.loads((compressed / "compression_info.json").read_text())
    assert len(info["layers"]) == 12  # 2 blocks x (q, k, v, out, 2 feed-forward) linear layers

    dense = saved(cli("--yard", tmp_path, "merge", "--checkpoint", compressed, "--dense"))
    factors = load_file(str(compressed / "model.safetensors"))
    weights = load_file(str(dense / "model.safetensors"))
    factored = [key.removesuffix(".left") for key in factors if key.endswith(".left")]
    assert len(factored) == 12
    for layer in factored:
        assert torch.allclose(
            weights[f"{layer}.weight"], factors[f"{layer}.left"] @ factors[f"{layer}.right"], atol=1e-6
        )
    role = get_task_type("audio_classification").model
    probe = role.probe_inputs(role.load_processor(compressed))  # one second of a tone

    def logits(folder: Path) -> torch.Tensor:
        with torch.inference_mode():
            return tuneyard.load(folder)(**probe).logits

    assert torch.allclose(logits(compressed), logits(dense), atol=1e-4)
    assert not torch.allclose(logits(compressed), logits(checkpoint), atol=1e-4)  # ratio 0.5 changed it

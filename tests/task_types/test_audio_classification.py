"""Audio classification: real speech (espeak-ng words, split by voice), tiny speech encoders
built from configs (Wav2Vec2, HuBERT, Whisper's encoder), trained and evaluated through the CLI.

The words come from scripts/build_spoken_words.py (the ``words`` fixture, conftest.py): three
words ("no", "stop", "yes"; chance is 1/3) in 6 train voices, 2 validation voices and 3 test
voices nobody trained on. Tables of audio paths, bad audio, eval files, grids and compression:
test_audio_io.py.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from topic_data import write_topic_csvs

from tuneyard.data.options import ColumnOptions
from tuneyard.task_types.data_loading import load_task_data

AUDIO = ("--task-type", "audio_classification")
# Tiny encoders from scratch learn these words in a few epochs at a high learning rate.
TRAIN = ("--learning-rate", "2e-3", "--batch-size", "8", "--max-seconds", "1", "-q")
CHANCE = 1 / 3


def test_an_audiofolder_is_read_as_audio_rows_with_unseen_test_voices(words) -> None:
    data = load_task_data(data_dir=words)  # no --task-type: an audiofolder is audio rows
    assert data.spec.task_type == "audio_classification" and data.spec.label_names == ("no", "stop", "yes")
    assert {split: len(rows) for split, rows in data.splits.items()} == {
        "train": 72,
        "validation": 24,
        "test": 36,
    }
    assert not data.carved_validation
    from tuneyard.task_types.audio_classification.data import audio_sources

    def voices(split: str) -> set[str]:
        return {name.split("_")[0] for name in audio_sources(data.splits[split])}

    assert len(voices("train")) == 6 and not voices("test") & (voices("train") | voices("validation"))
    assert (words / "PROVENANCE.md").read_text().count("espeak") >= 1


def test_a_prepared_audio_dataset_is_recognised_by_its_audio_column(cli, tmp_path, words) -> None:
    prepared = cli("--yard", tmp_path, "prepare", words, "--name", "words", "-q")
    assert prepared.exit_code == 0, prepared.stderr
    folder = Path(prepared.stdout.strip().splitlines()[-1])
    data = load_task_data(data_dir=folder)  # no --task-type: the audio column decides
    assert data.spec.task_type == "audio_classification" and data.spec.label_names == ("no", "stop", "yes")
    assert sorted(data.splits["test"]["label"]) == sorted(
        load_task_data(data_dir=words, columns=ColumnOptions(task_type="audio_classification")).splits[
            "test"
        ]["label"]
    )


def test_features_are_resampled_cropped_padded_and_extracted_once(words, audio_model) -> None:
    from transformers import AutoFeatureExtractor

    from tuneyard.task_types.audio_classification.features import extract
    from tuneyard.task_types.audio_classification.options import AudioOptions

    extractor = AutoFeatureExtractor.from_pretrained(audio_model("wav2vec2"))
    rows = load_task_data(data_dir=words, columns=ColumnOptions(task_type="audio_classification"))
    train = rows.splits["train"]
    short = extract(
        train, extractor, AudioOptions(max_seconds=0.25), "train"
    )  # crops every clip (all are longer than 0.25 s)
    assert {len(values) for values in short["input_values"]} == {4000}  # 0.25 s at 16 kHz
    padded = extract(train, extractor, AudioOptions(max_seconds=1.0), "train")
    masks = padded["attention_mask"]
    assert {len(mask) for mask in masks} == {16000}
    heard = [sum(mask) for mask in masks]  # the clip's own samples (22.05 kHz resampled to 16 kHz)
    assert all(4000 < n < 16000 for n in heard), (min(heard), max(heard))
    cache = Path(padded.cache_files[0]["filename"])
    written = cache.stat().st_mtime_ns
    again = extract(train, extractor, AudioOptions(max_seconds=1.0), "train")
    assert (
        again.cache_files == padded.cache_files and cache.stat().st_mtime_ns == written
    )  # not extracted again


def test_whisper_head_is_its_projector_and_classifier_not_its_encoder(audio_model) -> None:
    from transformers import AutoModelForAudioClassification

    from tuneyard.task_types import get_task_type

    role = get_task_type("audio_classification").model
    whisper = AutoModelForAudioClassification.from_pretrained(audio_model("whisper"))
    wav2vec2 = AutoModelForAudioClassification.from_pretrained(audio_model("wav2vec2"))
    assert role.head_modules(whisper) == ["projector", "classifier"]
    assert role.head_modules(wav2vec2) == ["projector", "classifier"]


def test_a_second_run_on_the_same_clips_extracts_no_features(cli, tmp_path, words, audio_model) -> None:
    # 0.5 s: options no other test uses, so the first run here is the first to extract them.
    args = ("--checkpoint", audio_model("wav2vec2"), "--data", words, "--max-seconds", "0.5")
    quick = ("--epochs", "2", "--batch-size", "16", "--learning-rate", "1e-3")
    runs = [cli("--yard", tmp_path / "yard", "finetune", *args, *quick) for _ in range(2)]
    assert all(run.exit_code == 0 for run in runs), [run.stderr for run in runs]
    notes = [next(line for line in run.stderr.splitlines() if "features:" in line) for run in runs]
    print(*notes, sep="\n")  # with the seconds each took
    assert "features: 132 clips extracted" in notes[0] and "0 read from the cache" in notes[0]
    assert "features: 0 clips extracted" in notes[1] and "132 read from the cache" in notes[1]


def test_an_audio_model_trains_with_lora_on_a_layer_evaluates_and_merges(
    cli, tmp_path, words, audio_model
) -> None:
    yard = tmp_path / "yard"
    args = ("--checkpoint", audio_model("whisper"), "--data", words, *AUDIO, "--epochs", "1")
    trained = cli("--yard", yard, "finetune", *args, "--strategy", "lora", "--lora-layers", "0", *TRAIN)
    assert trained.exit_code == 0, trained.stderr
    run = Path(trained.stdout.strip().splitlines()[-1])
    config = json.loads((run / "manifest.json").read_text())["config"]
    assert config["task_options"] == {"max_seconds": 1.0}  # how clips were cropped/padded, recorded
    adapter = json.loads((run / "best" / "adapter_config.json").read_text())
    assert adapter["layers_to_transform"] == [0] and (run / "best" / "preprocessor_config.json").is_file()
    evaluated = cli(
        "--yard", yard, "eval", "--checkpoint", run / "best", "--data", words, *AUDIO, "--split", "test"
    )
    assert evaluated.exit_code == 0, evaluated.stderr
    (results,) = (run / "evaluation_results").iterdir()
    for name in ("summary_metrics.csv", "per_class_metrics.csv", "predictions.csv", "confusion_matrix.png"):
        assert (results / name).is_file(), name
    with (results / "predictions.csv").open() as handle:
        predictions = list(csv.DictReader(handle))
    assert len(predictions) == 36 and predictions[0]["text"].endswith(".wav")
    merged = cli("--yard", yard, "merge", "--checkpoint", run / "best")  # compares logits on a probe tone
    assert merged.exit_code == 0, merged.stderr
    (merged_folder,) = yard.glob("models/merged/whisper/*")
    assert (merged_folder / "preprocessor_config.json").is_file()


def test_adapter_trains_only_attention_adapters_and_head_evaluates_and_refuses_to_merge(
    cli, tmp_path, words, audio_model
) -> None:
    from safetensors.torch import load_file

    base = audio_model("hubert", stable_layer_norm=True)
    yard = tmp_path / "yard"
    args = ("--checkpoint", base, "--data", words, *AUDIO, "--epochs", "1", "--project", "p")
    trained = cli("--yard", yard, "finetune", *args, *TRAIN, "--strategy", "adapter", "--adapter-dim", "8")
    assert trained.exit_code == 0, trained.stderr
    run = Path(trained.stdout.strip().splitlines()[-1])
    assert run.name.endswith("_adapter")  # as seed 001 names its runs
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["adapter"] == {"dim": 8} and manifest["strategy"] == "adapter"
    assert json.loads((run / "best" / "config.json").read_text())["adapter_attn_dim"] == 8
    before, after = load_file(base / "model.safetensors"), load_file(run / "best" / "model.safetensors")
    changed = {name for name in after if name not in before or not before[name].equal(after[name])}
    adapters = {name for name in after if ".adapter_layer." in name}
    assert len(adapters) == 2 * 6 and adapters <= changed  # both layers: norm, down, up (weight, bias)
    others = changed - adapters
    assert {name.split(".")[0] for name in others} == {"projector", "classifier"}  # nothing else moved
    with run.with_name(f"{run.name}_weights.csv").open() as handle:  # the project's weight-change numbers
        norms = {(row["module"], int(row["layer"])): float(row["norm"]) for row in csv.DictReader(handle)}
    added = {key: norm for key, norm in norms.items() if key[0].startswith("adapter_layer.")}
    assert {layer for _, layer in added} == {0, 1} and all(norm > 0 for norm in added.values())
    assert all(norm == 0 for key, norm in norms.items() if key not in added)  # the encoder's own: frozen
    evaluated = cli(
        "--yard", yard, "eval", "--checkpoint", run / "best", "--data", words, *AUDIO, "--split", "test"
    )
    assert evaluated.exit_code == 0, evaluated.stderr  # the folder rebuilds its adapters as it loads
    merged = cli("--yard", yard, "merge", "--checkpoint", run / "best")
    assert merged.exit_code == 2 and "error:" in merged.stderr.lower()
    assert "cannot be merged" in merged.stderr and "ReLU" in merged.stderr
    assert not (yard / "models" / "merged").exists()


def test_adapter_on_a_model_without_adapter_slots_is_lora_on_its_mlp_and_merges(
    cli, tmp_path, words, audio_model
) -> None:
    yard = tmp_path / "yard"
    args = ("--checkpoint", audio_model("whisper"), "--data", words, *AUDIO, "--epochs", "1")
    adapter = ("--strategy", "adapter", "--set", "adapter.dim=4")
    trained = cli("--yard", yard, "finetune", *args, *TRAIN, *adapter)
    assert trained.exit_code == 0, trained.stderr
    run = Path(trained.stdout.strip().splitlines()[-1])
    saved = json.loads((run / "best" / "adapter_config.json").read_text())
    assert saved["r"] == 4 and sorted(saved["target_modules"]) == ["fc1", "fc2"]
    merged = cli("--yard", yard, "merge", "--checkpoint", run / "best")
    assert merged.exit_code == 0, merged.stderr


def test_a_text_model_on_audio_rows_and_an_audio_model_on_text_rows_are_refused(
    cli, tmp_path, words, audio_model, tiny_model
) -> None:
    yard = tmp_path / "yard"
    text_model = cli("--yard", yard, "finetune", "--checkpoint", tiny_model("bert"), "--data", words, *AUDIO)
    assert text_model.exit_code == 2 and "error:" in text_model.stderr.lower()
    assert "feature extractor" in text_model.stderr
    topics = write_topic_csvs(tmp_path / "topics", ("sports", "cooking"), {"train": 16, "validation": 8})
    on_text = cli(
        "--yard", yard, "finetune", "--checkpoint", audio_model("wav2vec2"), "--data", topics, *AUDIO
    )
    assert on_text.exit_code == 2 and "'audio'" in on_text.stderr
    as_text = cli("--yard", yard, "finetune", "--checkpoint", audio_model("wav2vec2"), "--data", topics)
    assert as_text.exit_code == 2 and "no loadable tokenizer" in as_text.stderr  # read as text rows
    assert not (yard / "models").exists()  # nothing written


def test_an_empty_audio_file_is_refused_by_name(cli, tmp_path, words, audio_model) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(words, broken)
    (broken / "train" / "yes" / "empty.wav").write_bytes(b"")
    yard = tmp_path / "yard"
    result = cli(
        "--yard", yard, "finetune", "--checkpoint", audio_model("wav2vec2"), "--data", broken, *AUDIO
    )
    assert result.exit_code == 2, result.stderr
    assert "error:" in result.stderr.lower() and "train row" in result.stderr
    assert "(empty.wav) is an empty audio file" in result.stderr and "Remove the row" in result.stderr
    assert not (yard / "models").exists()  # refused before a run folder exists


LORA0 = ("--strategy", "lora", "--lora-layers", "0", "--learning-rate", "1e-2")
FROZEN = ("--strategy", "frozen", "--learning-rate", "1e-2")
ADAPTER = ("--strategy", "adapter", "--learning-rate", "1e-2")


# "-large": pre-LayerNorm layers, where --strategy adapter puts transformers' attention adapters;
# Whisper's layers have no slot for them (adapter is PEFT LoRA on its MLP layers there).
@pytest.mark.slow
@pytest.mark.parametrize(
    ("family", "strategy", "epochs", "floor"),
    [
        ("wav2vec2", ("--strategy", "full"), 6, 0.6),
        ("hubert", ("--strategy", "full"), 6, 0.6),
        ("whisper", ("--strategy", "full"), 8, 0.6),
        ("wav2vec2", LORA0, 8, 0.5),
        ("hubert", LORA0, 8, 0.5),
        ("whisper", LORA0, 8, 0.5),
        ("wav2vec2", FROZEN, 8, 0.4),
        ("hubert", FROZEN, 8, 0.4),
        ("whisper", FROZEN, 8, 0.4),
        ("wav2vec2-large", ADAPTER, 8, 0.5),
        ("hubert-large", ADAPTER, 8, 0.5),
        ("whisper", ADAPTER, 8, 0.5),
    ],
    ids=[
        f"{family}-{kind}"
        for kind in ("full", "lora0", "frozen", "adapter")
        for family in (("wav2vec2-large", "hubert-large") if kind == "adapter" else ("wav2vec2", "hubert"))
        + ("whisper",)
    ],
)
def test_tiny_speech_encoders_learn_the_words_of_unseen_voices(
    cli, tmp_path, words, audio_model, family, strategy, epochs, floor
) -> None:
    yard = tmp_path / "yard"
    model = audio_model(family.removesuffix("-large"), stable_layer_norm=family.endswith("-large"))
    args = ("--checkpoint", model, "--data", words, *AUDIO, "--epochs", str(epochs))
    trained = cli("--yard", yard, "finetune", *args, *TRAIN, *strategy)
    assert trained.exit_code == 0, trained.stderr
    run = Path(trained.stdout.strip().splitlines()[-1])
    evaluated = cli(
        "--yard", yard, "eval", "--checkpoint", run / "best", "--data", words, *AUDIO, "--split", "test"
    )
    assert evaluated.exit_code == 0, evaluated.stderr
    (results,) = (run / "evaluation_results").iterdir()
    accuracy = json.loads((results / "metrics.json").read_text())["metrics"]["accuracy"]
    print(f"{family} {' '.join(strategy)}: test accuracy {accuracy:.3f} (chance {CHANCE:.3f})")
    assert accuracy >= floor > CHANCE

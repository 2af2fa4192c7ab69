"""``tuneyard prepare``: files, folders, a cached hub dataset; sampling, carving, the card, lineage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from media_data import digits_imagefolder, spoken_words_audiofolder

REPO = Path(__file__).resolve().parents[2]
TOPICS = REPO / "data" / "debian_topics"


def folder_of(result) -> Path:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def manifest_of(folder: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((folder / "manifest.json").read_text())  # type: ignore[no-any-return]


def test_a_folder_is_sampled_with_its_seed_and_filed_with_a_card(cli, tmp_path) -> None:
    first = folder_of(
        cli("--yard", tmp_path, "prepare", TOPICS, "--name", "small", "--num-samples", "50", "-q")
    )
    assert first == tmp_path / "datasets" / "small"
    assert sorted(p.name for p in first.iterdir()) == [
        "README.md", "manifest.json", "test.parquet", "train.parquet", "validation.parquet"
    ]  # fmt: skip
    manifest = manifest_of(first)
    assert manifest["kind"] == "dataset" and manifest["status"] == "complete"
    assert manifest["metrics"]["rows"] == {"train": 50, "validation": 50, "test": 50}
    assert sum(manifest["metrics"]["labels"]["train"].values()) == 50
    assert manifest["metrics"]["schema"] == {
        "id": "Value('string')", "text": "Value('string')", "label": "Value('string')"
    }  # fmt: skip
    card = (first / "README.md").read_text()
    assert manifest["metrics"]["content_hash"] in card and "| train | 50 |" in card
    again = folder_of(
        cli("--yard", tmp_path, "prepare", TOPICS, "--name", "small", "--num-samples", "50", "-q")
    )
    assert again == tmp_path / "datasets" / "small-2"  # never overwritten
    assert manifest_of(again)["metrics"]["content_hash"] == manifest["metrics"]["content_hash"]
    other_seed = ("prepare", TOPICS, "--name", "small", "--num-samples", "50", "--seed", "1", "-q")
    reseeded = folder_of(cli("--yard", tmp_path, *other_seed))
    assert manifest_of(reseeded)["metrics"]["content_hash"] != manifest["metrics"]["content_hash"]


def test_a_single_file_gets_stratified_validation_and_test_splits(cli, tmp_path) -> None:
    from datasets import Dataset

    source = tmp_path / "reviews.csv"
    shutil.copy(TOPICS / "train.csv", source)
    args = (
        "prepare",
        source,
        "--validation-fraction",
        "0.1",
        "--test-fraction",
        "0.2",
        "--rename",
        "text=body",
    )
    folder = folder_of(cli("--yard", tmp_path, *args, "-q"))
    assert folder.name == "reviews"
    metrics = manifest_of(folder)["metrics"]
    # Fractions of the whole, rounded up: 0.2 and 0.1 of 1,602 rows.
    assert metrics["rows"]["test"] == 321 and metrics["rows"]["validation"] == 161
    names = {"games", "graphics", "net", "science", "sound", "text"}
    assert all(set(counts) == names for counts in metrics["labels"].values())  # names, not class ids
    for split in ("validation", "test"):  # every label keeps its share of train, within a row or two
        for label, count in metrics["labels"]["train"].items():
            share = count / metrics["rows"]["train"]
            assert metrics["labels"][split][label] == pytest.approx(share * metrics["rows"][split], abs=2)
    assert Dataset.from_parquet(str(folder / "test.parquet")).column_names == ["id", "body", "label"]


def write_cached_hub_dataset(cache: Path) -> None:
    """``tuneyard/tiny_topics`` as datasets leaves a downloaded hub dataset in its cache."""
    from datasets.packaged_modules.csv.csv import Csv

    builder = Csv(
        cache_dir=str(cache.parent / "build"), dataset_name="tiny_topics", hash="0123abcd",
        data_files={"train": str(TOPICS / "train.csv"), "test": str(TOPICS / "test.csv")},
    )  # fmt: skip
    builder.download_and_prepare()
    shutil.copytree(builder.cache_dir, cache / "tuneyard___tiny_topics" / "default" / "0.0.0" / "0123abcd")


def test_a_cached_hub_dataset_loads_offline(cli, tmp_path, monkeypatch) -> None:
    import datasets

    cache = tmp_path / "hf_datasets"
    write_cached_hub_dataset(cache)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    args = ("prepare", "tuneyard/tiny_topics", "--split", "train", "--sample-percent", "10", "-q")
    folder = folder_of(cli("--yard", tmp_path, *args))
    manifest = manifest_of(folder)
    assert folder.name == "tiny_topics" and manifest["metrics"]["rows"] == {"train": 160}
    assert manifest["parents"] == [{"id": None, "path": "tuneyard/tiny_topics", "role": "source"}]
    missing = cli("--yard", tmp_path, "prepare", "tuneyard/not_cached", "-q")
    assert missing.exit_code == 2 and "could not load the hub dataset 'tuneyard/not_cached'" in missing.stderr


def test_a_prepared_dataset_is_a_parent_of_the_run_that_trains_on_it(cli, tiny_model, tmp_path) -> None:
    folder_of(cli("--yard", tmp_path, "prepare", TOPICS, "--name", "topics_64", "--num-samples", "64", "-q"))
    args = ("--checkpoint", tiny_model("bert", num_labels=6), "--data", "topics_64", "--epochs", "1", "-q")
    run_folder = folder_of(cli("--yard", tmp_path, "finetune", *args, "--max-length", "32"))
    run = manifest_of(run_folder)
    assert {"path": "datasets/topics_64", "role": "data"}.items() <= run["parents"][-1].items()
    assert run["dataset"] == "topics_64"
    evaluated = cli("--yard", tmp_path, "eval", "--checkpoint", run_folder / "best", "--data", "topics_64")
    assert evaluated.exit_code == 0, evaluated.stderr
    assert (run_folder / "evaluation_results" / "topics_64_validation" / "metrics.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("./no/such/folder",), "does not exist"),
        ((), "give a SOURCE"),
        ((str(TOPICS), "--num-samples", "5", "--sample-percent", "5"), "--num-samples or --sample-percent"),
        ((str(TOPICS), "--split", "dev"), "has no split 'dev'"),
        ((str(TOPICS), "--rename", "body=text"), "has no column 'body'"),
        ((str(TOPICS), "--rename", "body"), "is not old=new"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(cli, tmp_path, args, message) -> None:
    result = cli("--yard", tmp_path, "prepare", *args)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "datasets").exists()


def test_an_imagefolder_keeps_its_images_and_label_names(cli, tmp_path) -> None:
    from datasets import Dataset

    source = digits_imagefolder(tmp_path / "digits")
    folder = folder_of(cli("--yard", tmp_path, "prepare", source, "--test-fraction", "0.25", "-q"))
    metrics = manifest_of(folder)["metrics"]
    assert metrics["rows"] == {"train": 15, "test": 6}  # 21 images of 0, 1 and 2 among the first 60
    assert set(metrics["labels"]["test"]) == {"0", "1", "2"}
    shutil.rmtree(source)  # the images are inside the dataset, not links to the source's files
    test = Dataset.from_parquet(str(folder / "test.parquet"))
    assert test.features["image"].__class__.__name__ == "Image" and test[0]["image"].size == (8, 8)


def test_an_audiofolder_of_real_speech_is_filed_with_its_audio(cli, tmp_path) -> None:
    from datasets import Dataset

    source = spoken_words_audiofolder(tmp_path / "words")
    folder = folder_of(cli("--yard", tmp_path, "prepare", source, "--name", "words", "-q"))
    metrics = manifest_of(folder)["metrics"]
    assert metrics["rows"] == {"train": 6} and metrics["labels"]["train"] == {"no": 3, "yes": 3}
    assert metrics["schema"]["audio"].startswith("Audio(")
    shutil.rmtree(source)
    words = Dataset.from_parquet(str(folder / "train.parquet"))
    samples = words[0]["audio"].get_all_samples()  # decoded by torchcodec from the bytes in the file
    assert samples.sample_rate == 22050 and 0.3 < samples.data.shape[1] / samples.sample_rate < 2
    assert float(samples.data.abs().max()) > 0.05  # speech, not silence


TASKS_YAML = """
tasks:
  sections:
    dataset: TOPICS
    system_prompt: "You sort Debian packages into archive sections."
    user_prompt: "Which section does this package belong to? {{ text }}"
    assistant_text_column: label
    grader: exact
    sample_percent: 0.05
  broken:
    user_prompt: "Summarise {{ description }}"
    assistant_text_column: label
""".replace("TOPICS", str(TOPICS))


def test_a_task_spec_formats_rows_into_conversations_the_decoder_trains_on(
    cli, tiny_decoder, tmp_path
) -> None:
    from datasets import Dataset

    spec = tmp_path / "tasks.yaml"
    spec.write_text(TASKS_YAML)
    args = ("prepare", "--task-spec", spec, "--task", "sections", "-q")  # the source is the task's
    folder = folder_of(cli("--yard", tmp_path, *args))
    manifest = manifest_of(folder)
    assert folder.name == "sections" and manifest["metrics"]["rows"] == {
        "train": 80,
        "validation": 17,
        "test": 17,
    }
    assert manifest["config"]["format"]["grader"]["name"] == "exact"
    assert manifest["config"]["sample_percent"] == 5  # the task's fraction 0.05: 5 % of each split
    first = Dataset.from_parquet(str(folder / "train.parquet"))[0]
    source = {row["id"]: row for row in Dataset.from_csv(str(TOPICS / "train.csv"))}[first["id"]]
    assert first["messages"] == [
        {"role": "system", "content": "You sort Debian packages into archive sections."},
        {"role": "user", "content": f"Which section does this package belong to? {source['text']}"},
        {"role": "assistant", "content": source["label"]},
    ]
    train = (
        "--checkpoint",
        tiny_decoder("llama"),
        "--data",
        "sections",
        "--epochs",
        "1",
        "--max-length",
        "256",
    )
    run = manifest_of(folder_of(cli("--yard", tmp_path, "finetune", *train, "-q")))
    assert run["status"] == "complete" and run["parents"][-1]["role"] == "data"


def test_a_template_naming_a_missing_column_is_refused_before_writing(cli, tmp_path) -> None:
    spec = tmp_path / "tasks.yaml"
    spec.write_text(TASKS_YAML)
    result = cli("--yard", tmp_path, "prepare", TOPICS, "--task-spec", spec, "--task", "broken")
    assert result.exit_code == 2 and "'description' is undefined" in result.stderr
    assert "Its columns: id, text, label" in result.stderr and not (tmp_path / "datasets").exists()
    unknown = cli("--yard", tmp_path, "prepare", TOPICS, "--task-spec", spec, "--task", "nope")
    assert unknown.exit_code == 2 and "Its tasks: sections, broken" in unknown.stderr


def test_an_experiments_formatted_dataset_is_filed_inside_it_and_found_by_name(cli, tmp_path) -> None:
    from tuneyard.data.prepare import dataset_folder
    from tuneyard.yard.root import Yard

    spec = tmp_path / "tasks.yaml"
    spec.write_text(TASKS_YAML)
    args = ("prepare", "--task-spec", spec, "--task", "sections", "--experiment", "exp1", "-q")
    folder = folder_of(cli("--yard", tmp_path, *args))
    assert folder == tmp_path / "experiments" / "exp1" / "formatted_datasets" / "sections"
    manifest = manifest_of(folder)
    assert (manifest["kind"], manifest["project"], manifest["task"]) == ("dataset", "exp1", "sections")
    assert dataset_folder("sections", Yard.open(tmp_path)) == folder  # --data sections finds it
    listed = cli("--yard", tmp_path, "runs", "ls", "--kind", "dataset", "--format", "json")
    assert [row["path"] for row in json.loads(listed.stdout)] == [
        "experiments/exp1/formatted_datasets/sections"
    ]


def test_a_large_split_is_written_in_shards_that_read_back_whole(cli, tmp_path) -> None:
    from tuneyard.data.loading import read_split_files

    folder = folder_of(cli("--yard", tmp_path, "prepare", TOPICS, "--max-shard-size", "200KB", "-q"))
    shards = sorted(path.name for path in folder.glob("train-*.parquet"))
    assert len(shards) >= 3 and shards[0] == f"train-00000-of-{len(shards):05d}.parquet"
    assert (folder / "test.parquet").is_file()  # a small split stays one file
    splits, _ = read_split_files(folder)
    rows = manifest_of(folder)["metrics"]["rows"]
    assert {split: len(part) for split, part in splits.items()} == rows
    (folder / shards[1]).unlink()
    result = cli("--yard", tmp_path, "eval", "--checkpoint", "x", "--data", folder)
    assert result.exit_code == 2
    assert f"the train split of {folder} is missing shard {shards[1]}" in " ".join(result.stderr.split())


def test_image_chat_rows_are_refused_by_a_text_model_and_nothing_is_written(
    cli, tiny_decoder, tmp_path
) -> None:
    """A text decoder never trains on image-chat rows with the images silently dropped."""
    digits = digits_imagefolder(tmp_path / "digits")
    spec = tmp_path / "tasks.yaml"
    spec.write_text(
        f"tasks:\n  digits:\n    dataset: {digits}\n    user_prompt: Which digit is this?\n"
        "    assistant_text_column: label\n    image_column: image\n"
    )
    folder = folder_of(cli("--yard", tmp_path, "prepare", "--task-spec", spec, "--task", "digits", "-q"))
    assert "images" in json.loads((folder / "manifest.json").read_text())["metrics"]["schema"]

    def artifacts() -> list[Path]:  # the yard's files, not its index cache
        return sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if ".tuneyard" not in p.parts)

    before = artifacts()
    decoder = ("--checkpoint", tiny_decoder("llama"), "--data", "digits")
    result = cli("--yard", tmp_path, "finetune", *decoder)  # read as image_text_to_text, for its images
    assert result.exit_code == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert message.startswith("error:") and "reads text only" in message and "vision-language" in message
    as_text = cli("--yard", tmp_path, "finetune", *decoder, "--task-type", "causal_lm")
    assert as_text.exit_code == 2, as_text.stderr
    message = " ".join(as_text.stderr.split())
    assert message.startswith("error:") and "image-chat rows" in message and "image_text_to_text" in message
    assert artifacts() == before

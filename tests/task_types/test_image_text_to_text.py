"""Vision-language chat (``image_text_to_text``): image-chat rows from every source, a tiny model of
SmolVLM's architecture (tests/vlm_models.py) trained, evaluated, generated from and merged through the CLI,
the LoRA scope over its towers, the pixels every verb feeds it, and the bad input it refuses.

The images are scikit-learn's bundled handwritten digits (the ``digit_images`` imagefolder).
"""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

from tuneyard.data.options import ColumnOptions
from tuneyard.task_types.data_loading import load_task_data

QUESTION = ("--image-question", "What digit is this?")
QUICK = ("--epochs", "1", "--batch-size", "4", "-q")


def only_run(yard: Path) -> Path:
    (manifest,) = (yard / "models" / "finetuned").glob("*/*/*/manifest.json")
    return manifest.parent


def test_an_imagefolder_is_read_as_a_question_per_image_answered_by_its_label(digit_images) -> None:
    data = load_task_data(data_dir=digit_images, columns=ColumnOptions(image_question="What digit is this?"))
    assert data.spec.task_type == "image_text_to_text"  # no --task-type: the image files decide
    rows = data.splits["train"]
    row = rows[0]
    assert row["prompt"] == [
        {
            "role": "user",
            "content": [{"type": "image", "text": None}, {"type": "text", "text": "What digit is this?"}],
        }
    ]
    assert row["completion"][0]["content"] == [{"type": "text", "text": row["reference"]}]
    assert set(rows["reference"]) == {"0", "1", "2"}
    assert len(row["images"]) == 1 and row["images"][0].size == (8, 8)


def test_a_table_of_image_paths_and_image_chat_rows_read_as_the_same_rows(tmp_path, digit_images) -> None:
    import datasets

    table = tmp_path / "table"
    table.mkdir()
    images = sorted(digit_images.glob("*/*.png"))[:4]
    lines = [
        {"image": str(path.relative_to(digit_images)), "prompt": "Which digit?", "response": path.parent.name}
        for path in images
    ]
    (table / "train.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    for line in lines:  # paths are relative to the table file
        (table / line["image"]).parent.mkdir(exist_ok=True)
        (table / line["image"]).write_bytes((digit_images / line["image"]).read_bytes())
    chat = tmp_path / "chat"
    chat.mkdir()
    messages = [
        [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which digit?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": path.parent.name}]},
        ]
        for path in images
    ]
    rows = {"messages": messages, "images": [[str(path)] for path in images]}
    features = datasets.Features({
        "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.List(
            {"type": datasets.Value("string"), "text": datasets.Value("string")})}),
        "images": datasets.List(datasets.Image()),
    })  # fmt: skip
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(chat / "train.parquet"))

    from_table = load_task_data(data_dir=table).splits["train"]
    from_chat = load_task_data(data_dir=chat).splits["train"]
    assert from_table["prompt"] == from_chat["prompt"] and from_table["reference"] == from_chat["reference"]
    pixels = [[image.tobytes() for image in row] for row in from_table["images"]]
    assert pixels == [[image.tobytes() for image in row] for row in from_chat["images"]]


def test_a_dataset_prepared_with_an_image_column_trains_the_model(
    cli, tmp_path, tiny_vlm, digit_images
) -> None:
    """``tuneyard prepare --task-spec`` with an image column writes the images' bytes into Parquet."""
    spec = tmp_path / "tasks.yaml"
    spec.write_text(
        f"tasks:\n  digits:\n    dataset: {digit_images}\n    user_prompt: Which digit is this?\n"
        "    assistant_text_column: label\n    image_column: image\n"
    )
    assert cli("--yard", tmp_path, "prepare", "--task-spec", spec, "--task", "digits", "-q").exit_code == 0
    trained = cli("--yard", tmp_path, "finetune", "--checkpoint", tiny_vlm, "--data", "digits", *QUICK)
    assert trained.exit_code == 0, trained.stderr
    assert json.loads((only_run(tmp_path) / "manifest.json").read_text())["task_type"] == "image_text_to_text"


def digit_table(folder: Path, digit_images: Path) -> Path:
    """The digit images as train/validation/test tables of image paths and question/answer columns."""
    images = sorted(digit_images.glob("*/*.png"))
    splits = {"train": images[::3] + images[1::3], "validation": images[2::6], "test": images[5::6]}
    folder.mkdir()
    for split, paths in splits.items():
        rows = [
            {"image": str(path), "prompt": "Which digit?", "response": path.parent.name} for path in paths
        ]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_a_grid_of_image_runs_and_an_eval_grid_over_them(cli, tmp_path, tiny_vlm, digit_images) -> None:
    import csv

    import yaml

    table = digit_table(tmp_path / "digits", digit_images)
    yard = tmp_path / "yard"
    spec = {
        "experiment": "vision",
        "finetuning": {
            "models": [str(tiny_vlm)],
            "data": str(table),
            "strategies": ["full", "lora"],
            "epochs": 1,
            "batch_size": 4,
            "options": {"task_options": {"train_connector": True}},
        },
        "evals": {"tasks": [str(table)], "split": "test"},
    }
    (tmp_path / "vision.yaml").write_text(yaml.safe_dump(spec))
    ran = cli("--yard", yard, "grid", tmp_path / "vision.yaml")
    assert ran.exit_code == 0, ran.stderr
    assert "ran 2 cell(s) of 2" in ran.stderr
    folder = yard / "experiments" / "vision"
    with (folder / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["strategy"] for row in rows} == {"full", "lora"}
    assert {row["state"] for row in rows} == {"complete"} and all(
        0 <= float(row["digits"]) <= 1 for row in rows
    )
    runs = sorted((folder / "finetuned_checkpoints").iterdir())
    args = ("--models", tiny_vlm, *runs, "--tasks", table, "--experiment", "again", "--split", "test")
    again = cli("--yard", yard, "eval-grid", *args, "--set", "answers.max_new_tokens=3")
    assert again.exit_code == 0, again.stderr
    assert (
        len(json.loads((yard / "experiments" / "again" / "eval_grid_results.json").read_text())["cells"]) == 3
    )


def test_lora_adapts_the_chosen_blocks_of_each_tower_and_trains_the_connector(
    cli, tmp_path, tiny_vlm, digit_images
) -> None:
    yard = tmp_path / "yard"
    lora = ("--strategy", "lora", "--lora-layers", "1", "--lora-vision-layers", "0", "--train-connector")
    trained = cli(
        "--yard", yard, "finetune", "--checkpoint", tiny_vlm, "--data", digit_images, *QUESTION, *lora, *QUICK
    )
    assert trained.exit_code == 0, trained.stderr
    run = only_run(yard)
    adapter = json.loads((run / "best" / "adapter_config.json").read_text())
    targets = set(adapter["target_modules"])
    assert {target.rsplit(".", 1)[0] for target in targets} == {
        "model.text_model.layers.1.self_attn",
        "model.text_model.layers.1.mlp",
        "model.vision_model.encoder.layers.0.self_attn",
        "model.vision_model.encoder.layers.0.mlp",
    }
    assert adapter["modules_to_save"] == ["model.connector"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["task_type"] == "image_text_to_text"
    assert manifest["config"]["task_options"] == {"lora_vision_layers": "0", "train_connector": True}


def test_a_run_is_evaluated_generated_from_and_merged_with_its_images(
    cli, tmp_path, tiny_vlm, digit_images
) -> None:
    import torch

    import tuneyard
    from tuneyard.task_types.image_text_to_text import model as vlm

    yard = tmp_path / "yard"
    args = ("--checkpoint", tiny_vlm, "--data", digit_images, *QUESTION)
    assert (
        cli("--yard", yard, "finetune", *args, "--strategy", "lora", "--train-connector", *QUICK).exit_code
        == 0
    )
    best = only_run(yard) / "best"
    evaluated = cli(
        "--yard", yard, "eval", "--model", best, "--data", digit_images, *QUESTION, "--split", "validation"
    )
    assert evaluated.exit_code == 0, evaluated.stderr
    (metrics,) = best.parent.glob("evaluation_results/*/metrics.json")
    scores = json.loads(metrics.read_text())["metrics"]
    assert 0 <= scores["exact"] <= 1 and scores["perplexity"] > 1
    generated = cli(
        "--yard", yard, "generate", "--checkpoint", best, "--data", digit_images, *QUESTION,
        "--split", "validation", "--max-new-tokens", "3",
    )  # fmt: skip
    assert generated.exit_code == 0, generated.stderr
    (predictions,) = best.parent.glob("generations/*/predictions.jsonl")
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert lines and all(line["tokens"] <= 3 and "<image>" in line["prompt"] for line in lines)

    merged = cli("--yard", yard, "merge", "--checkpoint", best)
    assert merged.exit_code == 0, merged.stderr
    merged_folder = Path(merged.stdout.strip().splitlines()[-1].removeprefix("saved "))
    processor = vlm.load_processor(merged_folder)
    from tuneyard.task_types.image_text_to_text.inputs import probe_inputs

    probe = probe_inputs(processor)
    assert probe["pixel_values"].abs().sum() > 0  # the probe carries a real photograph
    with torch.no_grad():
        adapted = tuneyard.load(best)(**probe).logits
        folded = tuneyard.load(merged_folder)(**probe).logits
    assert torch.allclose(adapted, folded, atol=1e-4)


@pytest.mark.parametrize("preprocess", ["processor", "llamacpp"])
def test_every_verb_feeds_the_model_the_same_pixels(
    cli, tmp_path, tiny_vlm, digit_images, monkeypatch, preprocess
) -> None:
    """The vision tower's input, recorded in finetune (its validation passes), eval, generate and the
    transformers side of an export's validation (llama.cpp's side: test_image_preprocess.py)."""
    from transformers.models.idefics3 import modeling_idefics3

    seen: dict[str, set[bytes]] = {}
    verb = {"name": ""}
    forward = modeling_idefics3.Idefics3VisionTransformer.forward

    def recording(
        self: typing.Any, pixel_values: typing.Any, *args: typing.Any, **kwargs: typing.Any
    ) -> typing.Any:
        tiles = pixel_values.detach().to("cpu").float().numpy()
        seen.setdefault(verb["name"], set()).update(tile.tobytes() for tile in tiles)
        return forward(self, pixel_values, *args, **kwargs)

    monkeypatch.setattr(modeling_idefics3.Idefics3VisionTransformer, "forward", recording)
    yard = tmp_path / "yard"
    data = ("--data", digit_images, *QUESTION)
    verb["name"] = "finetune"
    options = ("--image-preprocess", preprocess, "--strategy", "lora", "--train-connector")
    assert cli("--yard", yard, "finetune", "--checkpoint", tiny_vlm, *data, *options, *QUICK).exit_code == 0
    best = only_run(yard) / "best"
    verb["name"] = "eval"
    assert cli("--yard", yard, "eval", "--model", best, *data, "--split", "validation").exit_code == 0
    verb["name"] = "generate"
    generate = ("--split", "validation", "--max-new-tokens", "2")
    assert cli("--yard", yard, "generate", "--checkpoint", best, *data, *generate).exit_code == 0
    verb["name"] = "export"
    exported = cli("--yard", yard, "export", "--checkpoint", best, "--quant", "f16", "--no-validate", "-q")
    assert exported.exit_code == 0, exported.stderr
    (export,) = (yard / "exports").iterdir()
    verb["name"] = "validate"
    every_row = ("--split", "validation", "--samples", "1000", "--max-new-tokens", "2")
    assert cli("--yard", yard, "validate", export, *data, *every_row, "-q").exit_code == 0
    assert seen["eval"] and seen["eval"] == seen["generate"] == seen["validate"]
    assert seen["eval"] <= seen["finetune"]  # the validation images, as training's evaluations saw them


def test_the_preprocessing_choices_are_one_table() -> None:
    from tuneyard.task_types.image_text_to_text.options import ImagePreprocess
    from tuneyard.task_types.image_text_to_text.preprocess import PREPROCESSES

    assert set(typing.get_args(ImagePreprocess)) == set(PREPROCESSES)


def write_table(folder: Path, rows: list[dict[str, str]]) -> Path:
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_an_image_that_cannot_be_decoded_is_refused_with_its_row(
    cli, tmp_path, tiny_vlm, digit_images
) -> None:
    good = sorted(digit_images.glob("0/*.png"))[0]
    (tmp_path / "broken.png").write_text("not an image")
    table = write_table(tmp_path / "data", [
        {"image": str(good), "prompt": "Which digit?", "response": "0"},
        {"image": str(tmp_path / "broken.png"), "prompt": "Which digit?", "response": "1"},
    ])  # fmt: skip
    yard = tmp_path / "yard"
    result = cli("--yard", yard, "finetune", "--checkpoint", tiny_vlm, "--data", table, *QUICK)
    assert result.exit_code == 2
    assert (
        result.stderr.startswith("error:")
        and "row 1" in result.stderr
        and "cannot be decoded" in result.stderr
    )
    assert not (yard / "models").exists()


def test_a_row_whose_image_markers_and_images_differ_is_refused(tmp_path, digit_images) -> None:
    from tuneyard.errors import DataError

    image = str(sorted(digit_images.glob("1/*.png"))[0])
    row = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Same?"}],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "yes"}]},
        ],
        "images": [image],
    }
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"row 0 has 2 image marker\(s\) in its messages but 1 image\(s\)"):
        load_task_data(data_dir=tmp_path)


def test_a_text_only_model_on_image_rows_is_refused(cli, tmp_path, tiny_vlm, digit_images) -> None:
    text_model = tiny_vlm.parent / f"{tiny_vlm.name}-text"  # the decoder the tiny VLM was assembled around
    result = cli(
        "--yard", tmp_path / "yard", "finetune", "--checkpoint", text_model, "--data", digit_images, *QUICK
    )
    assert result.exit_code == 2
    assert "reads text only" in result.stderr and "AutoModelForImageTextToText" in result.stderr
    assert not (tmp_path / "yard" / "models").exists()


def test_a_vision_language_model_on_text_only_rows_is_refused_with_why(
    cli, tmp_path, tiny_vlm, chat_folder
) -> None:
    chat = chat_folder(tmp_path / "chat", {"train": 4, "validation": 2})
    result = cli("--yard", tmp_path / "yard", "finetune", "--checkpoint", tiny_vlm, "--data", chat, *QUICK)
    assert result.exit_code == 2
    assert "vision-language model, and these chat rows have no images" in result.stderr
    assert not (tmp_path / "yard" / "models").exists()


def test_packing_image_rows_is_refused(cli, tmp_path, tiny_vlm, digit_images) -> None:
    result = cli(
        "--yard",
        tmp_path / "yard",
        "finetune",
        "--checkpoint",
        tiny_vlm,
        "--data",
        digit_images,
        "--packing",
        *QUICK,
    )
    assert result.exit_code == 2 and "--packing does not apply to image-chat rows" in result.stderr


def test_vision_layers_the_tower_lacks_are_refused_naming_the_option(
    cli, tmp_path, tiny_vlm, digit_images
) -> None:
    lora = ("--strategy", "lora", "--lora-vision-layers", "5")
    result = cli(
        "--yard",
        tmp_path / "yard",
        "finetune",
        "--checkpoint",
        tiny_vlm,
        "--data",
        digit_images,
        *lora,
        *QUICK,
    )
    assert result.exit_code == 2
    assert "--lora-vision-layers '5' names layer 5, but the model has 2 layers" in result.stderr
    assert not (tmp_path / "yard").exists()


def test_the_answer_length_is_recorded_and_caps_eval_and_generate(
    cli, tmp_path, tiny_vlm, digit_images
) -> None:
    yard = tmp_path / "yard"
    args = ("--checkpoint", tiny_vlm, "--data", digit_images, *QUESTION, "--strategy", "lora", *QUICK)
    too_short = cli("--yard", yard, "finetune", *args, "--max-answer-tokens", "1")
    assert too_short.exit_code == 2 and "answers longer than --max-answer-tokens 1" in too_short.stderr
    assert not (yard / "models").exists()  # " 0" and the end of turn are two tokens
    assert cli("--yard", yard, "finetune", *args, "--max-answer-tokens", "3").exit_code == 0
    best = only_run(yard) / "best"
    assert json.loads((best.parent / "manifest.json").read_text())["config"]["task_options"] == {
        "max_answer_tokens": 3
    }
    generate = ("--data", digit_images, *QUESTION, "--split", "validation", "--max-new-tokens", "64")
    assert cli("--yard", yard, "generate", "--checkpoint", best, *generate).exit_code == 0
    (predictions,) = best.parent.glob("generations/*/predictions.jsonl")
    assert all(json.loads(line)["tokens"] <= 3 for line in predictions.read_text().splitlines())


def test_the_assembled_model_names_its_text_model_class_for_llama_cpp(tmp_path) -> None:
    """A decoder built from a config (or read from a GGUF file) records no class; the converter needs one."""
    import copy

    from smol_decoders import smol_tokenizer
    from tiny_configs import tiny_config
    from transformers import AutoConfig, AutoModelForCausalLM

    from tuneyard.task_types.image_text_to_text.assembly import VisionTower, assemble_vlm

    tokenizer = copy.deepcopy(smol_tokenizer())
    config = tiny_config("llama", 2, 2, tokenizer)
    config.vocab_size = len(tokenizer)
    decoder = AutoModelForCausalLM.from_config(config)
    assert not decoder.config.architectures
    folder = assemble_vlm(decoder, tokenizer, tmp_path / "vlm", VisionTower(image_size=32, hidden_size=32))
    assert AutoConfig.from_pretrained(folder).text_config.architectures == ["LlamaForCausalLM"]


def test_llamacpp_preprocessing_of_one_tile_images_trains_without_a_max_length(
    cli, tmp_path, digit_images
) -> None:
    """llama.cpp makes a one-tile image a slice plus the overview (twice the processor's image tokens):
    the length finetune picks must hold the rows as the run's --image-preprocess prepares them."""
    from vlm_models import build_tiny_vlm

    model = build_tiny_vlm(tmp_path / "one_tile_vlm", longest_edge=32)
    args = ("--checkpoint", model, "--data", digit_images, "--image-preprocess", "llamacpp", *QUICK)
    result = cli("--yard", tmp_path / "yard", "finetune", *args)
    assert result.exit_code == 0, result.stderr

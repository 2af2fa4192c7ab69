"""A vision-language model (SmolVLM's architecture) exported to GGUF with its multimodal projector and
validated in real llama.cpp (its ``mtmd`` library): the same images and prompts through transformers
and llama.cpp, identical greedy answers, graded accuracy both sides, the ``--min-accuracy`` gate.

The tiny model (tests/vlm_models.py) is random, so its answers are words, not digits; what is
compared is that llama.cpp answers each image as transformers does. Its answers depend on the
image (a photograph, a colour, a digit each get their own), so identical answers on varied images
show that llama.cpp sees the same image as transformers, not only the same text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

QUESTION = ("--image-question", "What digit is this?")
QUICK_VALIDATE = ("--samples", "8", "--max-new-tokens", "4", "-q")


@pytest.fixture(scope="module")
def varied_images(tmp_path_factory: pytest.TempPathFactory, digit_images: Path) -> Path:
    """A table of 8 images of different content and sizes (scikit-learn's two photographs, colours,
    digits) with a question and an answer each: rows where a random vision tower tells images apart."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_image

    folder = tmp_path_factory.mktemp("varied")
    images = {
        "flower": Image.fromarray(load_sample_image("flower.jpg")).resize((96, 64)),
        "china": Image.fromarray(load_sample_image("china.jpg")).resize((64, 96)),
        "black": Image.new("RGB", (64, 64)),
        "white": Image.new("RGB", (48, 48), (255, 255, 255)),
        "red": Image.new("RGB", (40, 64), (255, 0, 0)),
        "noise": Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)),
    }
    for name, image in images.items():
        image.save(folder / f"{name}.png")
    rows = [{"image": f"{name}.png", "prompt": "What is this?", "response": name} for name in images]
    for digit in ("0", "1"):
        path = sorted((digit_images / digit).glob("*.png"))[0]
        rows.append({"image": str(path), "prompt": "What digit is this?", "response": digit})
    for split in ("train", "validation"):  # validated on the validation split, all 8 rows
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


@pytest.fixture(scope="module")
def vlm_run(
    tiny_vlm: Path, digit_images: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """A yard holding a LoRA run of the tiny VLM on the digit images (connector trained too)."""
    from tuneyard.cli import main

    yard = tmp_path_factory.mktemp("yard")
    args = ["--yard", str(yard), "finetune", "--checkpoint", str(tiny_vlm), "--data", str(digit_images)]
    args += [*QUESTION, "--strategy", "lora", "--train-connector", "--epochs", "1", "--batch-size", "4"]
    try:
        main([*args, "--name", "digits_vlm", "-q"])
    except SystemExit as done:
        assert done.code in (0, None)
    return yard, next(yard.glob("models/finetuned/*/lora/digits_vlm"))


def exported(result) -> Path:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1].removeprefix("saved ")).parent


def gguf_fields(file: Path, *names: str) -> list[object]:
    """Metadata fields of a (small) GGUF file."""
    from gguf import GGUFReader

    reader = GGUFReader(file)
    return [reader.fields[name].contents() for name in names]


@pytest.mark.slow
def test_a_run_exports_its_text_model_and_projector_and_llama_cpp_answers_the_images_as_transformers(
    cli, tmp_path, vlm_run, varied_images
) -> None:
    yard, run = vlm_run
    data = ("--data", varied_images)
    f16 = exported(cli("--yard", yard, "export", "--checkpoint", run, *data, *QUICK_VALIDATE))
    text, projector = f16 / "digits_vlm-f16.gguf", f16 / "mmproj-digits_vlm-f16.gguf"
    assert text.is_file() and projector.is_file()
    # What llama.cpp's mtmd tiles and resizes by, read by the converter from the model folder: the
    # tile size (vision_config), the processor's longest edge (processor_config.json), the connector's
    # pixel shuffle (config.json): the tiny model's 32 px tiles, 64 px images, 2x2 shuffle.
    fields = (
        "general.type",
        "clip.projector_type",
        "clip.vision.image_size",
        "clip.vision.preproc_image_size",
    )
    assert gguf_fields(projector, *fields, "clip.vision.projector.scale_factor") == [
        "mmproj", "idefics3", 32, 64, 2,
    ]  # fmt: skip
    manifest = json.loads((f16 / "manifest.json").read_text())
    assert manifest["config"]["projector"] == {"file": projector.name, "type": "f16"}
    assert manifest["metrics"]["projector_bytes"] == projector.stat().st_size
    assert manifest["metrics"]["projector_tensors"] == 38  # 2 vision blocks, embeddings, connector
    listed = {entry["path"]: entry["bytes"] for entry in manifest["files"]}
    assert listed[text.name] == text.stat().st_size and listed[projector.name] == projector.stat().st_size
    assert manifest["parents"][0]["path"].startswith("models/merged/")  # the run was merged first

    checks = manifest["metrics"]["validation"]
    assert checks["rows"] == 8 and checks["images"] == 8 and checks["tokenizer_identical"] == 1.0
    assert checks["chat_template_identical"] == 1.0
    assert checks["greedy_identical"] == 1.0  # F16: every image answered as transformers answers it
    assert checks["accuracy_hf"] == checks["accuracy_gguf"]
    assert "top1_agreement" not in checks  # mtmd gives no per-position logits for image prompts
    answers = [json.loads(line) for line in (f16 / "validation" / "answers.jsonl").open()]
    assert all(line["llama_cpp"] == line["transformers"] for line in answers)
    assert len({line["llama_cpp"] for line in answers}) >= 4  # the images, not only the text, decide

    same_prompts(f16, varied_images, tmp_path)

    q8 = exported(
        cli("--yard", yard, "export", "--checkpoint", run, "--quant", "q8_0", "--no-validate", "-q")
    )
    assert (q8 / "digits_vlm-q8_0.gguf").stat().st_size < text.stat().st_size
    assert (q8 / "mmproj-digits_vlm-f16.gguf").is_file()  # the projector stays F16
    result = cli("--yard", yard, "validate", f16, q8, *data, *QUICK_VALIDATE[:-1])
    assert result.exit_code == 0, result.stderr
    table = result.stdout
    assert "identical greedy answers (8, 8 images)" in table and "exact accuracy" in table
    assert "not compared (images)" in table and q8.name in table
    q8_checks = json.loads((q8 / "manifest.json").read_text())["metrics"]["validation"]
    assert q8_checks["rows"] == 8 and 0 <= q8_checks["greedy_identical"] <= 1


@pytest.mark.slow
def test_the_gate_fails_an_export_whose_llama_cpp_accuracy_is_below_it(
    cli, tmp_path, tiny_vlm, varied_images
) -> None:
    """The untrained model answers words, never the image's name: accuracy 0, under the gate."""
    yard = tmp_path / "yard"
    args = ("--data", varied_images, *QUICK_VALIDATE, "--min-accuracy", "0.5")
    result = cli("--yard", yard, "export", "--checkpoint", tiny_vlm, "--name", "untrained", *args)
    assert result.exit_code == 1
    assert "exact accuracy through llama.cpp is 0.000, under --min-accuracy 0.5" in result.stderr
    export = yard / "exports" / "untrained_f16"
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "under --min-accuracy" in manifest["stop_reason"]
    checks = manifest["metrics"]["validation"]
    assert checks["passed"] == 0.0 and checks["accuracy_gguf"] == 0.0 and checks["greedy_identical"] == 1.0
    summary = json.loads((export / "validation" / "summary.json").read_text())
    assert summary["passed"] is False and summary["metrics"] == checks

    # An export whose projector is gone cannot be validated on images: said before any model loads.
    (export / "mmproj-untrained-f16.gguf").unlink()
    result = cli("--yard", yard, "validate", export, "--data", varied_images, "-q")
    assert result.exit_code == 2 and "holds no multimodal projector (mmproj-*.gguf)" in result.stderr
    assert json.loads((export / "manifest.json").read_text())["metrics"]["validation"] == checks


def test_the_converter_reads_a_vision_language_folder_as_a_text_model_and_a_projector(tiny_vlm) -> None:
    from tuneyard.export.converter import has_vision_tower, model_architecture

    assert has_vision_tower(tiny_vlm) and not has_vision_tower(tiny_vlm.parent / f"{tiny_vlm.name}-text")
    assert model_architecture(tiny_vlm) == "LlamaForCausalLM"  # the text model: text_config's
    assert model_architecture(tiny_vlm, projector=True) == "Idefics3ForConditionalGeneration"


def same_prompts(export: Path, table: Path, scratch: Path) -> None:
    """llama.cpp builds each image's prompt as transformers' processor does: the same text tokens,
    the same tiles in the same places (the table's images, of odd sizes: wide, tall, tiny, and a
    300 x 130 px banner)."""
    from PIL import Image

    from tuneyard.export.llama_runtime import MultimodalRuntime
    from tuneyard.task_types.image_text_to_text.model import load_processor

    source = json.loads((export / "manifest.json").read_text())["config"]["source"]
    processor = load_processor(export.parent.parent / source)
    Image.new("RGB", (300, 130), (0, 128, 255)).save(scratch / "banner.png")
    rows = [json.loads(line) for line in (table / "validation.jsonl").open()]
    files = [table / row["image"] for row in rows] + [scratch / "banner.png"]
    prompt = "<|im_start|>User:<image>What is this?<end_of_utterance>\nAssistant:"
    (text,) = (file for file in export.glob("*.gguf") if not file.name.startswith("mmproj-"))
    runtime = MultimodalRuntime(text, next(export.glob("mmproj-*.gguf")), 256, 1)
    try:
        for file in files:
            ids = processor(text=[prompt], images=[[Image.open(file)]], add_special_tokens=False)[
                "input_ids"
            ][0]
            expected = [None if token == processor.image_token_id else token for token in ids]
            found = runtime.prompt_positions(prompt.replace("<image>", runtime.marker), [file.read_bytes()])
            assert found == expected, file.name
    finally:
        runtime.close()

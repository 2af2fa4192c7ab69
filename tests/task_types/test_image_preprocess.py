"""The named image preprocessings of vision-language chat: ``llamacpp`` gives the tokens and pixel
tiles the pinned llama.cpp itself computes (read from its library, tests/mtmd_reader.py, on GGUF
files its own converter wrote from a tiny Idefics3), ``processor`` is the processor's own call.

Photos are scikit-learn's bundled samples, cropped to tall, wide, tiny (5x3) and square sizes.
"""

from __future__ import annotations

import contextlib
import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mtmd_reader import llamacpp_prompt, mtmd_context
from PIL import Image
from sklearn.datasets import load_digits, load_sample_images
from smol_decoders import smol_tokenizer

from tuneyard.errors import ConfigError, DataError
from tuneyard.task_types.image_text_to_text.preprocess import PREPROCESSES, model_inputs, seen_image

SPECIAL = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"] + [
    f"<row_{row}_col_{column}>" for row in range(1, 7) for column in range(1, 7)
]
PROMPT = "User:{}Describe the picture.<end_of_utterance>\nAssistant:"


@pytest.fixture(scope="module")
def processor():  # type: ignore[no-untyped-def]
    """An Idefics3 processor as SmolVLM ships one, small: 64-pixel tiles of 16 image tokens,
    images resized to a longest edge of 128 (2 x 2 tiles at most)."""
    tokenizer = copy.deepcopy(smol_tokenizer())  # the cached one is shared with other tests: add to a copy
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL})
    return idefics3_processor(tokenizer, longest_edge=128)


@pytest.fixture(scope="module")
def one_tile_processor(processor):  # type: ignore[no-untyped-def]
    """The same with images resized to one tile (as SmolVLM's ``size={"longest_edge": 512}`` does)."""
    return idefics3_processor(processor.tokenizer, longest_edge=64)


def idefics3_processor(tokenizer, longest_edge: int):  # type: ignore[no-untyped-def]
    from transformers import Idefics3ImageProcessor, Idefics3Processor

    images = Idefics3ImageProcessor(size={"longest_edge": longest_edge}, max_image_size={"longest_edge": 64})
    return Idefics3Processor(image_processor=images, tokenizer=tokenizer, image_seq_len=16)


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    china, flower = (Image.fromarray(image) for image in load_sample_images().images)
    wide = china.crop((0, 100, 300, 270))
    transparent = wide.copy()
    transparent.putalpha(china.crop((100, 100, 400, 270)).convert("L"))  # the photo's own brightness as alpha
    digit = load_digits().images[3]
    return {
        "wide": wide,
        "tall": flower.crop((200, 50, 350, 310)),
        "tiny": china.resize((5, 3), Image.Resampling.LANCZOS),
        "square": flower.crop((150, 150, 247, 247)),
        "rgba": transparent,
        "grey": Image.fromarray((digit * 255 / 16).astype(np.uint8), mode="L"),
        "palette": wide.quantize(16),
        "grey_alpha": transparent.convert("LA"),
        "bilevel": wide.convert("1"),
    }


@pytest.fixture(scope="module")
def ggufs(processor, one_tile_processor, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """The GGUFs llama.cpp's pinned converter writes for a tiny Idefics3 (random weights: the shapes and
    settings are what count): ``text``, ``mmproj`` with ``processor`` and ``one_tile`` (the mmproj
    with ``one_tile_processor``)."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration

    from tuneyard.export.converter import converter_view, find_converter

    tokenizer = processor.tokenizer
    out = tmp_path_factory.mktemp("idefics3")
    config = Idefics3Config(
        # The converter picks the text model's converter by text_config.architectures, as
        # SmolVLM's published config names it; a config transformers builds has none.
        text_config={
            "model_type": "llama", "architectures": ["VLlama3ForCausalLM"], "vocab_size": len(tokenizer),
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
            "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 1024,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
            "image_size": 64, "patch_size": 8,
        },
        scale_factor=2, image_token_id=processor.image_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(config)
    conversions = {
        "text": (processor, []),
        "mmproj": (processor, ["--mmproj"]),
        "one_tile": (one_tile_processor, ["--mmproj"]),
    }
    script, runs, views = str(find_converter().script), [], contextlib.ExitStack()
    with views:  # all conversions at once: each is mostly the converter's imports
        for name, (its_processor, flags) in conversions.items():
            model.save_pretrained(out / name)
            its_processor.save_pretrained(out / name)
            view = views.enter_context(converter_view(out / name))
            command = [
                sys.executable,
                script,
                str(view),
                "--outtype",
                "f16",
                *flags,
                "--outfile",
                str(out / f"{name}.gguf"),
            ]
            runs.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            )
        logs = [run.communicate()[1] for run in runs]
    assert [run.returncode for run in runs] == [0] * len(runs), "\n".join(log[-2000:] for log in logs)
    return {name: out / f"{name}.gguf" for name in conversions}


def prompt(processor, count: int = 1) -> str:  # type: ignore[no-untyped-def]
    return PROMPT.format(processor.image_token * count)


@pytest.mark.slow  # about 25 s on 2 busy cores: three conversions, SmolLM2's tokenizer
def test_llamacpp_inputs_are_llamacpps_own(processor, one_tile_processor, photos, ggufs) -> None:  # type: ignore[no-untyped-def]
    """For every photo (tall, wide, tiny, square; RGBA, L, LA, P, 1 modes), for two images in one
    prompt, and with images resized to one tile: the token ids llama.cpp makes of the prompt, and
    pixel tiles equal to llama.cpp's to the last bit."""
    several = [[photos["tall"], photos["tiny"]]]
    cases = [
        ("mmproj", processor, [[photo] for photo in photos.values()] + several),
        ("one_tile", one_tile_processor, [[photos["wide"]], [photos["tall"]], [photos["tiny"]]] + several),
    ]
    for mmproj, its_processor, prompts in cases:
        with mtmd_context(ggufs["text"], ggufs[mmproj]) as context:
            for images in prompts:
                ids, tiles = llamacpp_prompt(context, PROMPT.format("<__media__>" * len(images)), images)
                inputs = model_inputs(
                    its_processor, [prompt(its_processor, len(images))], [images], "llamacpp"
                )
                ours = inputs["input_ids"][0].tolist()
                assert [-1 if token == its_processor.image_token_id else token for token in ours] == ids
                assert inputs["pixel_values"].shape[:2] == (1, len(tiles))
                for tile, theirs in zip(inputs["pixel_values"][0], tiles, strict=True):
                    assert torch.equal(tile, torch.from_numpy(theirs))
                assert bool(inputs["pixel_attention_mask"].all())


def test_slices_and_overview_follow_the_image_shape(processor, photos) -> None:  # type: ignore[no-untyped-def]
    """A wide photo resized to 128 x 72 is 2 x 2 tiles plus the overview; a 5x3 one too (upscaled)."""
    for name in ("wide", "tiny", "tall"):
        inputs = model_inputs(processor, [prompt(processor)], [[photos[name]]], "llamacpp")
        text = processor.tokenizer.decode(inputs["input_ids"][0])
        assert inputs["pixel_values"].shape == (1, 5, 3, 64, 64)
        assert [f"<row_{r}_col_{c}>" in text for r in (1, 2) for c in (1, 2)] == [True] * 4
        assert text.count(processor.image_token) == 5 * 16


def test_processor_choice_is_the_processors_call(processor, photos) -> None:  # type: ignore[no-untyped-def]
    texts = [prompt(processor), prompt(processor, 2)]
    images = [[photos["wide"]], [photos["tall"], photos["square"]]]
    ours = model_inputs(processor, texts, images, "processor")
    theirs = processor(text=texts, images=images, return_tensors="pt", padding=True)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in theirs)


def test_choices_agree_where_llamacpp_and_the_processor_do(processor, photos) -> None:  # type: ignore[no-untyped-def]
    """On opaque RGB photos whose longest edge is a whole number of tiles both choices give the same
    tensors; on a transparent one llama.cpp drops alpha where the processor composites onto white."""
    texts = [prompt(processor), prompt(processor, 2)]
    images = [[photos["wide"]], [photos["tall"], photos["tiny"]]]
    inputs = {choice: model_inputs(processor, texts, images, choice) for choice in PREPROCESSES}
    assert inputs["llamacpp"].keys() == inputs["processor"].keys()
    assert all(torch.equal(inputs["llamacpp"][key], inputs["processor"][key]) for key in inputs["processor"])
    rgba = {
        choice: model_inputs(processor, [prompt(processor)], [[photos["rgba"]]], choice)
        for choice in PREPROCESSES
    }
    assert torch.equal(rgba["llamacpp"]["input_ids"], rgba["processor"]["input_ids"])
    assert not torch.equal(rgba["llamacpp"]["pixel_values"], rgba["processor"]["pixel_values"])
    dropped = model_inputs(processor, [prompt(processor)], [[photos["rgba"].convert("RGB")]], "llamacpp")
    assert torch.equal(rgba["llamacpp"]["pixel_values"], dropped["pixel_values"])


def test_an_image_of_one_tile_is_a_slice_and_the_overview_in_llamacpp(one_tile_processor, photos) -> None:  # type: ignore[no-untyped-def]
    """Resized to one tile, the processor sends the image once with the global-image tag; llama.cpp
    sends the same tile twice, as slice row 1 column 1 and as the overview."""
    text, images = [prompt(one_tile_processor)], [[photos["wide"]]]
    inputs = {choice: model_inputs(one_tile_processor, text, images, choice) for choice in PREPROCESSES}
    assert inputs["processor"]["pixel_values"].shape == (1, 1, 3, 64, 64)
    assert inputs["llamacpp"]["pixel_values"].shape == (1, 2, 3, 64, 64)
    assert torch.equal(inputs["llamacpp"]["pixel_values"][0, 0], inputs["llamacpp"]["pixel_values"][0, 1])
    decoded = {
        choice: one_tile_processor.tokenizer.decode(inputs[choice]["input_ids"][0]) for choice in inputs
    }
    assert "<row_1_col_1>" in decoded["llamacpp"] and "<row_1_col_1>" not in decoded["processor"]


def test_llamacpp_rounds_each_edge_to_tiles_on_its_own(processor, photos) -> None:  # type: ignore[no-untyped-def]
    """With a longest edge that is not a whole number of tiles (100 for 64-pixel tiles) a 300x156 photo
    becomes 100x52: llama.cpp makes 2 x 1 tiles of it, the processor (short edge from the rounded long
    one) 2 x 2."""
    uneven = idefics3_processor(processor.tokenizer, longest_edge=100)
    images = [[photos["wide"].crop((0, 0, 300, 156))]]
    tiles = {
        choice: model_inputs(uneven, [prompt(uneven)], images, choice)["pixel_values"].shape[1]
        for choice in PREPROCESSES
    }
    assert tiles == {"llamacpp": 2 + 1, "processor": 4 + 1}


def test_identical_calls_give_identical_inputs(processor, photos) -> None:  # type: ignore[no-untyped-def]
    texts, images = [prompt(processor), prompt(processor)], [[photos["palette"]], [photos["grey"]]]
    for choice in PREPROCESSES:
        first, second = (model_inputs(processor, texts, images, choice) for _ in range(2))
        assert all(torch.equal(first[key], second[key]) for key in first)


def test_a_batch_pads_tiles_per_prompt(processor, photos) -> None:  # type: ignore[no-untyped-def]
    texts = [prompt(processor), prompt(processor, 2)]
    inputs = model_inputs(processor, texts, [[photos["wide"]], [photos["tall"], photos["tiny"]]], "llamacpp")
    assert inputs["pixel_values"].shape == (2, 10, 3, 64, 64)
    assert inputs["pixel_attention_mask"][0, :5].all() and not inputs["pixel_attention_mask"][0, 5:].any()
    assert not inputs["pixel_values"][0, 5:].any()


def test_prompts_without_images(processor, photos) -> None:  # type: ignore[no-untyped-def]
    """A text-only prompt in a batch gets only padding tiles; a batch of text only has no pixels."""
    for choice in PREPROCESSES:
        mixed = model_inputs(processor, ["Hello.", prompt(processor)], [[], [photos["wide"]]], choice)
        assert not mixed["pixel_attention_mask"][0].any() and mixed["pixel_attention_mask"][1].all()
        text_only = model_inputs(processor, ["Hello.", "Good morning."], [[], []], choice, padding="longest")
        assert sorted(text_only.keys()) == ["attention_mask", "input_ids"]
        assert (
            text_only["input_ids"].tolist()
            == processor.tokenizer(["Hello.", "Good morning."], padding=True)["input_ids"]
        )


def test_unknown_choice_is_refused_with_the_choices(processor, photos) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        ConfigError, match="unknown image preprocessing 'android'; the choices are processor, llamacpp"
    ):
        model_inputs(processor, [prompt(processor)], [[photos["wide"]]], "android")


def test_llamacpp_refuses_a_family_it_does_not_cover(processor, photos) -> None:  # type: ignore[no-untyped-def]
    from transformers import LlavaProcessor, SiglipImageProcessor

    llava = LlavaProcessor(image_processor=SiglipImageProcessor(), tokenizer=processor.tokenizer)
    with pytest.raises(
        ConfigError,
        match=r"Idefics3 / SmolVLM family \(Idefics3Processor\), not a model with a LlavaProcessor",
    ) as refused:
        model_inputs(llava, ["<image>Describe."], [[photos["wide"]]], "llamacpp")
    assert "--image-preprocess processor" in str(refused.value)


def test_llamacpp_refuses_images_it_cannot_reproduce(processor, photos) -> None:  # type: ignore[no-untyped-def]
    deep = Image.fromarray(np.asarray(photos["grey"], dtype=np.uint16) * 257)  # a 16-bit grey scan
    with pytest.raises(DataError, match="mode 'I;16'"):
        model_inputs(processor, [prompt(processor)], [[deep]], "llamacpp")
    thin = photos["wide"].crop((0, 0, 300, 1))  # resized to 128 x 0
    with pytest.raises(DataError, match="300x1 pixels is too thin"):
        model_inputs(processor, [prompt(processor)], [[thin]], "llamacpp")
    with pytest.raises(DataError, match="a prompt has 1 <image> tokens but 2 images"):
        model_inputs(processor, [prompt(processor)], [[photos["wide"], photos["tall"]]], "llamacpp")


@pytest.mark.parametrize("choice", list(PREPROCESSES))
@pytest.mark.parametrize("name", ["wide", "tall", "tiny", "rgba"])
def test_a_teacher_is_shown_the_picture_the_tiles_are_cut_from(processor, photos, choice, name) -> None:  # type: ignore[no-untyped-def]
    """``label --image-preprocess``: cut into tiles and normalised, the picture ``seen_image`` gives
    is, bit for bit, every tile the model is fed but the overview."""
    seen = seen_image(processor, photos[name], choice)
    tile = processor.image_processor.max_image_size["longest_edge"]
    columns, rows = seen.width // tile, seen.height // tile
    assert (columns * tile, rows * tile) == seen.size and seen.mode == "RGB"
    crops = [
        seen.crop((column * tile, row * tile, (column + 1) * tile, (row + 1) * tile))
        for row in range(rows)
        for column in range(columns)
    ]
    cut = processor.image_processor(crops, do_resize=False, do_image_splitting=False, return_tensors="pt")
    fed = model_inputs(processor, [prompt(processor)], [[photos[name]]], choice)["pixel_values"][0]
    assert len(fed) == len(crops) + 1  # and the overview
    assert torch.equal(fed[: len(crops)], cut["pixel_values"][0])


def test_the_picture_a_teacher_is_shown_of_a_one_tile_image(one_tile_processor, photos) -> None:  # type: ignore[no-untyped-def]
    """Resized to one tile, the processor's picture is the single tile it sends; llama.cpp's, its slice."""
    for choice in PREPROCESSES:
        seen = seen_image(one_tile_processor, photos["wide"], choice)
        assert seen.size == (64, 64)
        cut = one_tile_processor.image_processor([seen], do_resize=False, do_image_splitting=False)
        fed = model_inputs(one_tile_processor, [prompt(one_tile_processor)], [[photos["wide"]]], choice)
        assert torch.equal(fed["pixel_values"][0][0], torch.as_tensor(cut["pixel_values"][0][0]))

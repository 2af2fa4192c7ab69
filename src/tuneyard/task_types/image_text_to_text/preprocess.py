"""Image preprocessing for vision-language chat, named so training and deployment agree.

A model trained on pixels prepared one way and served on pixels prepared another way
sees images it never learned from (the worst bug in seed 003). So tuneyard names the
preprocessing, records the name with the model, and every verb (the finetune collator,
eval, generate, export validation) builds its inputs through :func:`model_inputs`, which
makes the pixel tensors identical everywhere by construction; ``label`` shows a teacher
:func:`seen_image`, the picture those tensors are cut from. The choices are
:data:`PREPROCESSES`:

``processor``
    The Hugging Face processor's own call, unchanged.

``llamacpp``
    What the pinned llama.cpp (vendored in llama-cpp-python 0.3.36) does to an image of
    an Idefics3 / SmolVLM model, read from ``tools/mtmd/``:

    1. RGB: llama.cpp decodes images with stb_image asking for 3 channels
       (``mtmd-helper.cpp: mtmd_helper_bitmap_init_from_buf``), which drops an alpha
       channel and repeats a grey one. PIL's ``convert("RGB")`` does the same; the
       processor instead composites transparency onto white
       (``transformers.image_transforms.convert_to_rgb``).
    2. Resize so the longest edge is the GGUF's ``clip.vision.preproc_image_size`` (the
       processor's ``size["longest_edge"]``, written by the converter), the other edge
       ``int(longest_edge / aspect)`` rounded up to even, upscaling small images
       (``mtmd-image.cpp: mtmd_image_preprocessor_idefics3::preprocess``).
    3. Resize again to whole tiles: each edge rounded up to a multiple of the tile size
       ``clip.vision.image_size`` (the processor's ``max_image_size["longest_edge"]``),
       each edge on its own. The processor derives the short edge from the long one
       (``resize_for_vision_encoder``), which can give one more row or column of tiles.
    4. Every resize is Pillow's Lanczos filter, ported to integer arithmetic exactly
       (``mtmd-image.cpp: img_tool::resize_pillow``; ``clip.cpp`` sets
       ``RESIZE_ALGO_LANCZOS`` for ``PROJECTOR_TYPE_IDEFICS3``), so ``PIL.Image.resize``
       with ``LANCZOS`` gives the same bytes. No padding colour: nothing is padded.
    5. Slices: the tiled image cut into rows x cols tiles, row by row; the overview is
       the tiled image resized to one tile. The slices come first and the overview last.
       An image that fits one tile still gets one slice plus the overview; the processor
       sends only the image itself then.
    6. Pixels: ``u8 / 255.0f``, then ``(x - mean) / std`` in float32 with the model's
       ``image_mean`` / ``image_std`` (``clip-impl.h: clip_image_f32::from_u8``,
       ``normalize``); the processor's rescale and normalise compute the same floats, so
       they are reused, as is its batching (tiles padded per prompt with
       ``pixel_attention_mask``).
    7. Prompt (``mtmd.cpp: mtmd_tokenizer::add_media``, ``MTMD_SLICE_TMPL_IDEFICS3``):
       per slice ``<fake_token_around_image><row_R_col_C>`` then its image tokens, a
       ``\\n`` after each row but the last, then ``\\n\\n<fake_token_around_image>
       <global-img>``, the overview's image tokens and ``<fake_token_around_image>``.
       The processor writes the same tokens when it splits (its ``\\n`` after the last
       row plus ``\\n`` before the overview become the one ``\\n\\n`` token).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image
from transformers import BatchFeature

from tuneyard.errors import ConfigError, DataError


@dataclass(frozen=True)
class Preprocess:
    """A named way to turn prompts and images into model inputs."""

    summary: str  # one line, for --help
    inputs: Callable[..., BatchFeature]  # (processor, texts, images, **text_kwargs) -> BatchFeature
    seen: Callable[[Any, Image.Image], Image.Image]  # (processor, image) -> the picture the tiles come from


# Image modes whose RGB conversion in PIL (drop alpha, repeat grey, look up the palette)
# is what stb_image does when llama.cpp asks it for 3 channels.
LLAMACPP_MODES = ("RGB", "RGBA", "L", "LA", "P", "1")
# The processors whose prompt layout and image pipeline llama.cpp's Idefics3 projector reproduces.
LLAMACPP_PROCESSORS = ("Idefics3Processor",)


def model_inputs(
    processor: Any, texts: list[str], images: list[list[Image.Image]], preprocess: str, **text_kwargs: Any
) -> BatchFeature:
    """The model inputs (``input_ids``, ``attention_mask``, ``pixel_values``, ``pixel_attention_mask``)
    for ``texts`` that carry the processor's image token once per image, as the chat template
    renders them, and each prompt's ``images``, prepared the ``preprocess`` way."""
    return _named(preprocess).inputs(processor, texts, images, **text_kwargs)


def seen_image(processor: Any, image: Image.Image, preprocess: str) -> Image.Image:
    """``image`` as the vision tower reads it once prepared the ``preprocess`` way: the resized picture
    its tiles are cut from (a teacher labelling for this model should judge what the model will see)."""
    return _named(preprocess).seen(processor, image)


def _named(preprocess: str) -> Preprocess:
    if preprocess not in PREPROCESSES:
        raise ConfigError(
            f"unknown image preprocessing {preprocess!r}; the choices are {', '.join(PREPROCESSES)}.",
            "Pass --image-preprocess processor (the Hugging Face processor's own) "
            "or --image-preprocess llamacpp (what llama.cpp does when the model is served as GGUF).",
        )
    return PREPROCESSES[preprocess]


def _processor_inputs(
    processor: Any, texts: list[str], images: list[list[Image.Image]], **text_kwargs: Any
) -> BatchFeature:
    # A batch of text-only prompts has no pixels; the processor's image processor refuses an empty batch.
    return processor(  # type: ignore[no-any-return]
        text=texts,
        images=images if any(images) else None,
        return_tensors="pt",
        **{"padding": True, **text_kwargs},
    )


def _processor_seen(processor: Any, image: Image.Image) -> Image.Image:
    """The processor's resized picture, put back together from the tiles it cuts (its own resize,
    whichever backend the image processor uses; pixels before rescaling and normalising)."""
    import numpy as np

    cut = processor.image_processor(
        [[image]], do_rescale=False, do_normalize=False, do_pad=False, return_row_col_info=True
    )
    tiles = [np.asarray(tile, dtype=np.float32) for tile in cut["pixel_values"][0]]
    rows, columns = cut["rows"][0][0], cut["cols"][0][0]
    if rows == 0:  # one tile and no overview: the image itself, squared to the tile size
        canvas = tiles[0]
    else:
        rows_of_tiles = [tiles[row * columns : (row + 1) * columns] for row in range(rows)]
        canvas = np.concatenate([np.concatenate(row, axis=2) for row in rows_of_tiles], axis=1)
    return Image.fromarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8).transpose(1, 2, 0))


def _llamacpp_inputs(
    processor: Any, texts: list[str], images: list[list[Image.Image]], **text_kwargs: Any
) -> BatchFeature:
    longest_edge, tile = _llamacpp_sizes(processor)
    if len(texts) != len(images):
        raise DataError(
            f"{len(texts)} prompts came with {len(images)} lists of images; each prompt needs its own list."
        )
    expanded: list[str] = []
    tiles: list[list[Image.Image]] = []
    for text, prompt_images in zip(texts, images, strict=True):
        pieces = text.split(processor.image_token)
        if len(pieces) - 1 != len(prompt_images):
            raise DataError(
                f"a prompt has {len(pieces) - 1} {processor.image_token} tokens but "
                f"{len(prompt_images)} images: {text[:80]!r}",
                "Render the prompt with the processor's chat template, one image entry per image.",
            )
        prompt_tiles: list[Image.Image] = []
        parts = [pieces[0]]
        for image, after in zip(prompt_images, pieces[1:], strict=True):
            slices, columns, overview = _llamacpp_slices(_llamacpp_rgb(image), longest_edge, tile)
            prompt_tiles += [*slices, overview]
            parts += [_llamacpp_image_text(processor, len(slices) // columns, columns), after]
        expanded.append("".join(parts))
        tiles.append(prompt_tiles)
    # Every tile is already tile x tile: no splitting and no resize is left to the image processor,
    # only its rescale, normalise and padding of each prompt's tiles, which equal llama.cpp's.
    pixels = (
        processor.image_processor(tiles, do_resize=False, do_image_splitting=False, return_tensors="pt")
        if any(tiles)
        else {}
    )
    text_inputs = processor.tokenizer(expanded, return_tensors="pt", **{"padding": True, **text_kwargs})
    return BatchFeature(data={**text_inputs, **pixels})


def _llamacpp_seen(processor: Any, image: Image.Image) -> Image.Image:
    """The tiled picture llama.cpp cuts its slices from (its overview is this, shrunk to one tile)."""
    return _llamacpp_tiled(_llamacpp_rgb(image), *_llamacpp_sizes(processor))


def _llamacpp_sizes(processor: Any) -> tuple[int, int]:
    """The longest edge llama.cpp resizes to and its tile size, as the converter writes them from
    ``processor``; refuses a processor whose model family llama.cpp prepares differently."""
    name = type(processor).__name__
    if name not in LLAMACPP_PROCESSORS:
        raise ConfigError(
            f"--image-preprocess llamacpp covers the Idefics3 / SmolVLM family "
            f"({', '.join(LLAMACPP_PROCESSORS)}), not a model with a {name}.",
            "Use --image-preprocess processor for this model.",
        )
    image_processor = processor.image_processor
    return image_processor.size["longest_edge"], image_processor.max_image_size["longest_edge"]


def _llamacpp_rgb(image: Image.Image) -> Image.Image:
    """The image as llama.cpp's stb_image decodes it with 3 channels: alpha dropped, grey repeated."""
    if image.mode not in LLAMACPP_MODES:
        raise DataError(
            f"an image has mode {image.mode!r}; llama.cpp's image loader reads 8-bit RGB, grey and palette "
            f"images ({', '.join(LLAMACPP_MODES)}) and tuneyard cannot reproduce what it does to others.",
            "Convert the image to 8-bit RGB before training (PIL: image.convert('RGB')).",
        )
    return image.convert("RGB")


def _llamacpp_slices(
    image: Image.Image, longest_edge: int, tile: int
) -> tuple[list[Image.Image], int, Image.Image]:
    """llama.cpp's slices (row by row), their number of columns and the overview of ``image``."""
    tiled = _llamacpp_tiled(image, longest_edge, tile)
    columns, rows = tiled.width // tile, tiled.height // tile
    slices = [
        tiled.crop((column * tile, row * tile, (column + 1) * tile, (row + 1) * tile))
        for row in range(rows)
        for column in range(columns)
    ]
    return slices, columns, tiled.resize((tile, tile), Image.Resampling.LANCZOS)


def _llamacpp_tiled(image: Image.Image, longest_edge: int, tile: int) -> Image.Image:
    """``image`` resized to ``longest_edge``, then to whole tiles, each edge on its own."""
    width, height = image.size
    aspect = width / height
    if width >= height:
        resized = (longest_edge, int(longest_edge / aspect))
        resized = (resized[0], resized[1] + resized[1] % 2)
    else:
        resized = (int(longest_edge * aspect), longest_edge)
        resized = (resized[0] + resized[0] % 2, resized[1])
    if min(resized) <= 0:
        raise DataError(
            f"an image of {width}x{height} pixels is too thin for llama.cpp: its resize to a longest edge of "
            f"{longest_edge} makes it {resized[0]}x{resized[1]}, and llama.cpp refuses an empty side.",
            "Crop or pad such images to a less extreme aspect ratio.",
        )
    columns, rows = math.ceil(resized[0] / tile), math.ceil(resized[1] / tile)
    return image.resize(resized, Image.Resampling.LANCZOS).resize(
        (columns * tile, rows * tile), Image.Resampling.LANCZOS
    )


def _llamacpp_image_text(processor: Any, rows: int, columns: int) -> str:
    """The text llama.cpp puts where an image of ``rows`` x ``columns`` slices goes."""
    fake, image_tokens = processor.fake_image_token, processor.image_token * processor.image_seq_len
    row_texts = [
        "".join(f"{fake}<row_{row}_col_{column}>{image_tokens}" for column in range(1, columns + 1))
        for row in range(1, rows + 1)
    ]
    return "\n".join(row_texts) + f"\n\n{fake}{processor.global_image_tag}{image_tokens}{fake}"


PREPROCESSES: dict[str, Preprocess] = {
    "processor": Preprocess(
        "the Hugging Face processor's own image preprocessing", _processor_inputs, _processor_seen
    ),
    "llamacpp": Preprocess(
        "what the pinned llama.cpp does to images of an Idefics3 / SmolVLM model (for GGUF deployment)",
        _llamacpp_inputs,
        _llamacpp_seen,
    ),
}

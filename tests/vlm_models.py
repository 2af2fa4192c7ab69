"""A tiny vision-language model for the tests: a random decoder with SmolLM2's tokenizer, as SmolVLM."""

from __future__ import annotations

import copy
from pathlib import Path


def build_tiny_vlm(folder: Path, longest_edge: int = 64) -> Path:
    """An Idefics3 (SmolVLM's architecture) around a tiny random decoder with SmolLM2's real tokenizer,
    assembled by tuneyard's own ``assemble_vlm`` (32 px tiles of 8 px patches: 4 image tokens a tile;
    images resized to ``longest_edge``: 64 is 2 x 2 tiles and the overview, 32 one tile)."""
    from smol_decoders import build_smol_decoder, smol_tokenizer
    from transformers import AutoModelForCausalLM

    from tuneyard.task_types.image_text_to_text.assembly import VisionTower, assemble_vlm

    decoder = build_smol_decoder(folder.parent / f"{folder.name}-text")
    tower = VisionTower(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, longest_edge=longest_edge
    )
    text_model = AutoModelForCausalLM.from_pretrained(decoder)
    return assemble_vlm(text_model, copy.deepcopy(smol_tokenizer()), folder, tower)

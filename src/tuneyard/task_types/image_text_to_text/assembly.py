"""A vision-language model assembled the way SmolVLM was: a text decoder, a vision tower, a connector.

SmolVLM-256M is SmolLM2-135M with a SigLIP vision tower and a pixel-shuffle connector,
as an Idefics3 model. :func:`assemble_vlm` builds the same architecture around any
Llama-family text decoder: the decoder's own weights and tokenizer, Idefics3's image
tokens added to the vocabulary, SmolVLM's chat template, and a vision tower and
connector initialised from scratch (:class:`VisionTower` sizes them), so fine-tuning
teaches the vision side to talk to the text side. Why: with no hub access (the tests,
an air-gapped lab) this is how a real vision-language model is built from a real
text model; with the hub, ``HuggingFaceTB/SmolVLM-256M-Instruct`` loads as it is.

The result is an ordinary model folder (``config.json``, safetensors, the processor's
files) that ``AutoModelForImageTextToText`` and ``AutoProcessor`` load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# SmolVLM's chat template: "User:<image>question<end_of_utterance>\nAssistant: answer<end_of_utterance>\n".
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
END_OF_UTTERANCE = "<end_of_utterance>"
# Idefics3's image tokens: around an image, the image's place holder, the overview image, each tile.
GRID_SIDE = 6
IMAGE_TOKENS = (
    "<fake_token_around_image>",
    "<image>",
    END_OF_UTTERANCE,
    "<global-img>",
    *(f"<row_{row}_col_{column}>" for row in range(1, GRID_SIDE + 1) for column in range(1, GRID_SIDE + 1)),
)


@dataclass(frozen=True)
class VisionTower:
    """The vision side's sizes: a ViT over ``image_size`` px tiles, cut into ``patch_size`` px patches,
    and the connector's pixel shuffle (``scale_factor``: patches merged per side into one token)."""

    image_size: int = 64
    patch_size: int = 8
    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    intermediate_size: int = 256
    scale_factor: int = 2
    # The processor resizes an image's longest side to this, then cuts tiles of image_size.
    longest_edge: int = 64
    seed: int = 0

    @property
    def image_seq_len(self) -> int:
        """Tokens one tile becomes in the prompt."""
        return (self.image_size // self.patch_size) ** 2 // self.scale_factor**2


# How much stronger the new end-of-utterance's embedding starts than the decoder's own end-of-turn's.
END_PREFERENCE = 1.1


def start_ending_as(text_model: Any, end: int, own_end: int) -> None:
    """Start the new end-of-utterance token's embedding (and output row) as the decoder's own end of turn.

    Why: a mean-initialised new token is never predicted, and LoRA leaves the embeddings
    frozen, so a LoRA-trained model would never learn to stop (its loss on the token stays
    at about ln(vocabulary)). An instruct decoder already ends an answer with its own token
    (SmolLM2's ``<|im_end|>``); scaled by ``END_PREFERENCE`` the new row's logit is the
    larger wherever the decoder wants to end, so greedy decoding ends with the template's token.
    """
    import torch

    rows = {
        id(module.weight): module.weight
        for module in (text_model.get_input_embeddings(), text_model.get_output_embeddings())
    }
    with torch.no_grad():
        for weight in rows.values():
            weight[end] = END_PREFERENCE * weight[own_end]


def assemble_vlm(text_model: Any, tokenizer: Any, out: Path, vision: VisionTower = VisionTower()) -> Path:
    """Write an Idefics3 model around ``text_model`` (a loaded ``...ForCausalLM``) into ``out``."""
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
        Idefics3VisionConfig,
    )

    own_end = None if END_OF_UTTERANCE in tokenizer.get_vocab() else tokenizer.eos_token_id
    tokenizer.add_special_tokens({"additional_special_tokens": list(IMAGE_TOKENS)})
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    tokenizer.eos_token = END_OF_UTTERANCE  # a turn ends with it, as SmolVLM's tokenizer says
    text_model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    if own_end is not None:
        start_ending_as(text_model, tokenizer.convert_tokens_to_ids(END_OF_UTTERANCE), own_end)
    text_config = text_model.config
    text_config.eos_token_id = tokenizer.convert_tokens_to_ids(END_OF_UTTERANCE)
    # A decoder read from a GGUF file is dequantised, but its config still names the GGUF
    # "quantization"; copied on, the Trainer would refuse the assembled model as quantized.
    text = {key: value for key, value in text_config.to_dict().items() if key != "quantization_config"}
    # llama.cpp's converter picks the text model's converter by its class name (SmolVLM's hub
    # config says VLlama3ForCausalLM); a decoder read from a GGUF file has none recorded.
    text["architectures"] = text_config.architectures or [type(text_model).__name__]
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(
            hidden_size=vision.hidden_size,
            intermediate_size=vision.intermediate_size,
            num_hidden_layers=vision.layers,
            num_attention_heads=vision.heads,
            image_size=vision.image_size,
            patch_size=vision.patch_size,
        ).to_dict(),
        text_config=text,
        scale_factor=vision.scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=text_config.tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(vision.seed)
    model = Idefics3ForConditionalGeneration(config)
    model.model.text_model.load_state_dict(text_model.model.state_dict())
    model.lm_head.load_state_dict(text_model.lm_head.state_dict())
    model.generation_config.eos_token_id = text_config.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": vision.longest_edge},
        max_image_size={"longest_edge": vision.image_size},
    )
    processor = Idefics3Processor(
        image_processor, tokenizer, image_seq_len=vision.image_seq_len, chat_template=SMOLVLM_CHAT_TEMPLATE
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out

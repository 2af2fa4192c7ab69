"""Tiny speech encoders built from configs (a few layers, a small hidden size), saved with their
feature extractors: Wav2Vec2, HuBERT and Whisper's encoder as audio classifiers, untrained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

RATE = 16_000
# Conv feature encoder of Wav2Vec2 / HuBERT: 3 layers (stride 5*4*4 = 80 samples per frame).
CONV = {"conv_dim": (16, 16, 16), "conv_stride": (5, 4, 4), "conv_kernel": (10, 8, 8)}
ENCODER = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
POSITIONS = {"num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2, "vocab_size": 32}
WHISPER_SECONDS = 2  # the tiny Whisper's window: 200 mel frames, 100 encoder positions


def audio_config(family: str, stable_layer_norm: bool = False) -> tuple[Any, Any]:
    """The config and feature extractor of a tiny ``family`` (wav2vec2, hubert, whisper) classifier.

    ``stable_layer_norm``: Wav2Vec2/HuBERT with pre-LayerNorm encoder layers, as the -large
    models have (the layers with a slot for transformers' attention adapters).
    """
    from transformers import (
        HubertConfig,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        WhisperConfig,
        WhisperFeatureExtractor,
    )

    if family == "whisper":
        sizes = {"d_model": 32, "encoder_layers": 2, "decoder_layers": 1, "encoder_ffn_dim": 64}
        heads = {"encoder_attention_heads": 2, "decoder_attention_heads": 2, "decoder_ffn_dim": 64}
        tokens = {"vocab_size": 64, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
        config = WhisperConfig(
            **sizes, **heads, **tokens, decoder_start_token_id=1, max_target_positions=16,
            num_mel_bins=80, max_source_positions=100 * WHISPER_SECONDS // 2,
            # Weights at the 1/sqrt(width) scale Whisper's default (0.02) is for its 384-1280 widths: at
            # 0.02 the 32-wide convolutions' output is 1/60 of the sinusoidal positions it is added to,
            # the pooled features vary 0.002 from clip to clip around 0.6, and no head on them trains.
            init_std=32**-0.5,
        )  # fmt: skip
        return config, WhisperFeatureExtractor(feature_size=80, chunk_length=WHISPER_SECONDS)
    config_class = {"wav2vec2": Wav2Vec2Config, "hubert": HubertConfig}[family]
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=RATE, do_normalize=True, return_attention_mask=True)
    return config_class(**ENCODER, **CONV, **POSITIONS, do_stable_layer_norm=stable_layer_norm), extractor


def build_tiny_audio_model(
    target: Path, family: str, num_labels: int = 3, seed: int = 0, stable_layer_norm: bool = False
) -> Path:
    """A tiny ``family`` audio classifier (a head of ``num_labels``) with random weights, saved with
    its feature extractor."""
    import torch
    from transformers import AutoModelForAudioClassification

    config, extractor = audio_config(family, stable_layer_norm)
    config.num_labels = num_labels
    torch.manual_seed(seed)
    AutoModelForAudioClassification.from_config(config).save_pretrained(target)
    extractor.save_pretrained(target)
    return target

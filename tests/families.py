"""The families beyond the five the suite always had, and the tiny shape their decoders share."""

MORE_DECODERS = ("qwen2", "qwen3", "mistral", "gemma3_text", "phi3", "olmo2")
MORE_ENCODERS = ("distilbert", "deberta-v2", "xlm-roberta", "electra")
DECODER_SHAPE = {"num_key_value_heads": 2, "max_position_embeddings": 128, "head_dim": 16}

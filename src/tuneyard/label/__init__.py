"""``tuneyard label``: a teacher model behind an OpenAI-compatible API labels a dataset."""

"""Models as files: the starting checkpoint, config loading, GGUF import, low-rank layers, the model's layout.

Nothing here knows a task type: what a model is for is recorded in its manifest and
read by :mod:`tuneyard.task_types`.
"""

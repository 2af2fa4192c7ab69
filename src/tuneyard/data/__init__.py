"""Datasets: task specs (GLUE names), local files, splits and tokenization."""

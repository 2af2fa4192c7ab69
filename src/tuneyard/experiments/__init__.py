"""``tuneyard grid``: one experiment file, a fine-tuning grid and an eval grid, resumable cell by cell."""

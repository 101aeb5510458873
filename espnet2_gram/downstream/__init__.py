"""Downstream evaluation: the task table, probe heads, cached embeddings, the run list."""

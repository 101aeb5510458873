"""Audio classification metrics."""

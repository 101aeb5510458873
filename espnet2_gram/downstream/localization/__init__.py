"""Direction-of-arrival and SELD targets, decoding and metrics."""

"""Pretrained GRAM models: packing and loading, and conversion of the authors' weights."""

"""GRAM (General-purpose Real-world Audio Model) as an ESPnet plugin."""

__version__ = "0.1.0"

"""trunkline: the layer that holds voice AI agents in production."""

__version__ = "0.1.0"

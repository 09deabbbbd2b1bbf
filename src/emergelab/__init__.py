"""emergelab: a laboratory for the emergent capabilities of language models."""

__version__ = "0.1.0"

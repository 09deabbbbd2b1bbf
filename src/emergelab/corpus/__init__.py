"""Corpus preparation: tokenizer, training blocks, task sets and latent labels under ``data/``."""

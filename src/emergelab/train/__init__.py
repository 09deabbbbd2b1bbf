"""Pretraining: the training loop, checkpoints with manifests, exact resume."""

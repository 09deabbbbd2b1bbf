"""Interventions on Hugging Face models through forward hooks: ablate attention heads, erase a latent's
linear subspace from the residual stream, and the controls that make a drop specific. No model is
re-implemented and no weight is changed (``state_hash`` before and after says so)."""

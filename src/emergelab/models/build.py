"""Hugging Face models from a rung: GPT-2 for causal LM, BertForPreTraining for MLM (+NSP)."""
from __future__ import annotations

import torch

from emergelab.spec import Rung


def build_model(rung: Rung, *, vocab_size: int, seq_len: int, causal: bool, pad_token_id: int = 0) -> torch.nn.Module:
    """A freshly configured model (HF default init; call :func:`initialise` for a named scheme)."""
    if causal:
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(
            vocab_size=vocab_size, n_positions=seq_len, n_embd=rung.d_model, n_layer=rung.n_layer,
            n_head=rung.n_head, n_inner=rung.d_ff, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            activation_function="gelu_pytorch_tanh",  # GPT-2's gelu_new, as one fused kernel
            bos_token_id=None, eos_token_id=None, pad_token_id=pad_token_id, tie_word_embeddings=True,
        )
        return GPT2LMHeadModel(cfg)
    from transformers import BertConfig, BertForPreTraining

    cfg = BertConfig(
        vocab_size=vocab_size, hidden_size=rung.d_model, num_hidden_layers=rung.n_layer,
        num_attention_heads=rung.n_head, intermediate_size=rung.d_ff, max_position_embeddings=seq_len,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=pad_token_id,
        tie_word_embeddings=True,
    )
    return BertForPreTraining(cfg)


def count_params(model: torch.nn.Module) -> tuple[int, int]:
    """(total, non-embedding) parameter counts; tied weights are counted once."""
    seen, total, emb = set(), 0, 0
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if any(k in name for k in ("wte", "wpe", "word_embeddings", "position_embeddings", "token_type_embeddings")):
            emb += p.numel()
    return total, total - emb


def flops_per_token(n_params_nonembedding: int, n_layer: int, d_model: int, seq_len: int) -> float:
    """Training FLOPs per token: 6N + 6·n_layer·seq_len·d_model (Kaplan et al. 2020, attention term)."""
    return 6.0 * n_params_nonembedding + 6.0 * n_layer * seq_len * d_model

"""Hidden-Markov-model maths for the concepts world: GINC parameters, vectorised sampling, filtering."""
from __future__ import annotations

import numpy as np


def softmax(x: np.ndarray, temp: float = 1.0) -> np.ndarray:
    """exp(x/temp) / Σ exp(x/temp) along the last axis."""
    z = np.asarray(x, dtype=np.float64) / temp
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def permutation_mixture(rng: np.random.Generator, n: int, n_perms: int, temp: float) -> np.ndarray:
    """Σ_i w_i P_i: a mixture of ``n_perms`` random n×n permutation matrices, w = softmax((u − ½)/temp).

    GINC's ``generate_transmat_block``: a low temperature puts almost all weight on one permutation,
    so the chain is nearly deterministic.
    """
    w = softmax(rng.random(n_perms) - 0.5, temp)
    perms = np.stack([np.eye(n)[rng.permutation(n)] for _ in range(n_perms)])
    return np.einsum("p,pij->ij", w, perms)


def value_slot_transmat(value_T: np.ndarray, slot_T: np.ndarray) -> np.ndarray:
    """T[(v, s), (v', s')] = value_T[v, v'] · slot_T[s, s'], state index v·n_slots + s (GINC)."""
    return np.kron(value_T, slot_T)


def ginc_emission_table(rng: np.random.Generator, vocab: int, n_values: int, n_slots: int) -> np.ndarray:
    """[n_values, n_slots] symbol emitted by each hidden state; slot 0 always emits the delimiter 0."""
    table = rng.integers(1, vocab, size=(n_values, n_slots))
    table[:, 0] = 0
    return table


def sample_states(rng: np.random.Generator, start: np.ndarray, trans: np.ndarray, which: np.ndarray,
                  length: int) -> np.ndarray:
    """[N, length] hidden states; sequence i runs the chain ``which[i]`` (start [H, S], trans [H, S, S])."""
    n = len(which)
    cum_start = np.cumsum(start, axis=-1)
    cum_trans = np.cumsum(trans, axis=-1)
    cum_start[..., -1] = cum_trans[..., -1] = 1.0  # guard against round-off below 1
    states = np.empty((n, length), dtype=np.int64)
    u = rng.random((n, length))
    states[:, 0] = (u[:, :1] >= cum_start[which]).sum(axis=1)
    for t in range(1, length):
        rows = cum_trans[which, states[:, t - 1]]  # [N, S]
        states[:, t] = (u[:, t:t + 1] >= rows).sum(axis=1)
    return states


def sample_from_state(rng: np.random.Generator, trans: np.ndarray, first: int, length: int) -> np.ndarray:
    """A chain of ``length`` states that starts in state ``first`` (GINC ``generate_hiddens_from_state``)."""
    cum = np.cumsum(trans, axis=-1)
    cum[:, -1] = 1.0
    out = np.empty(length, dtype=np.int64)
    out[0] = first
    for t in range(1, length):
        out[t] = int((rng.random() >= cum[out[t - 1]]).sum())
    return out


def next_symbol_distribution(x: list[int], start: np.ndarray, trans: np.ndarray, emit: np.ndarray) -> np.ndarray:
    """P(x_{t+1} | x_1..x_t) by the forward algorithm; ``emit`` is [S, vocab] (rows sum to 1).

    alpha_1 ∝ start ⊙ emit[:, x_1];  alpha_t ∝ (alpha_{t−1} T) ⊙ emit[:, x_t];  P(next) = alpha_t T emit.
    """
    alpha = start * emit[:, x[0]]
    alpha = alpha / alpha.sum()
    for sym in x[1:]:
        alpha = (alpha @ trans) * emit[:, sym]
        alpha = alpha / alpha.sum()
    return (alpha @ trans) @ emit

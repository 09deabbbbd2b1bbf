"""Head scores: hand-built attention patterns get their known scores; rows come out of a tiny model."""
from __future__ import annotations

import numpy as np
import pytest

from emergelab.probe import (
    duplicate_token_score,
    induction_score,
    previous_token_score,
    repeated_random_tokens,
)


def _patterns(n_seq: int, period: int, start: int = 0) -> np.ndarray:
    """``[B, 4, T, T]``: head 0 previous-token, head 1 induction, head 2 uniform causal, head 3 self."""
    T = start + 2 * period
    attn = np.zeros((n_seq, 4, T, T))
    for i in range(T):
        attn[:, 0, i, max(i - 1, 0)] = 1.0
        j = i - period + 1 if i >= start + period else i  # before the repeat: attend to itself
        attn[:, 1, i, j] = 1.0
        attn[:, 2, i, : i + 1] = 1.0 / (i + 1)
        attn[:, 3, i, i] = 1.0
    return attn


@pytest.mark.parametrize("start", [0, 1])
def test_known_patterns(start):
    period = 6
    attn = _patterns(3, period, start)
    T = attn.shape[-1]
    prev = previous_token_score(attn)
    ind = induction_score(attn, period, start=start)
    assert prev[0] == 1.0 and prev[3] == 0.0
    assert prev[2] == pytest.approx(np.mean([1 / (i + 1) for i in range(1, T)]))
    assert ind[1] == 1.0 and ind[3] == 0.0 and ind[0] == 0.0
    assert ind[2] == pytest.approx(np.mean([1 / (i + 1) for i in range(start + period, T)]))


def test_duplicate_token_score():
    tokens = repeated_random_tokens(50, n_seq=4, period=5, seed=0)  # [4, 10]
    T = tokens.shape[1]
    attn = np.zeros((4, 2, T, T))
    for i in range(T):
        attn[:, 0, i, i - 5 if i >= 5 else i] = 1.0  # head 0 looks at the earlier copy of its token
        attn[:, 1, i, i] = 1.0
    score = duplicate_token_score(attn, tokens)
    assert score[0] == 1.0 and score[1] == 0.0
    with pytest.raises(ValueError):
        duplicate_token_score(attn, tokens[:, :3])


def test_repeated_random_tokens():
    seqs = repeated_random_tokens(100, n_seq=5, period=7, n_repeats=3, seed=1, bos_token_id=99, token_ids=np.arange(10, 60))
    assert seqs.shape == (5, 1 + 21)
    assert (seqs[:, 0] == 99).all()
    body = seqs[:, 1:]
    assert (body[:, :7] == body[:, 7:14]).all() and (body[:, 7:14] == body[:, 14:]).all()
    assert ((body >= 10) & (body < 60)).all()
    assert all(len(set(row[:7])) == 7 for row in body)  # no repeat inside a block
    assert (repeated_random_tokens(100, n_seq=5, period=7, seed=1) == repeated_random_tokens(100, n_seq=5, period=7, seed=1)).all()


def test_head_score_rows_on_tiny_gpt2():
    torch = pytest.importorskip("torch")
    from transformers import GPT2Config, GPT2LMHeadModel

    from emergelab.measurements import make_frame
    from emergelab.probe import extract_attentions, head_score_rows

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=40, n_positions=32,
                                       bos_token_id=0, eos_token_id=0, attn_implementation="sdpa"))
    rows = head_score_rows(model, 40, seed=0, n_seq=6, period=8, batch_size=4, rung="tiny", step=3)
    df = make_frame(rows)
    assert len(df) == 3 * 2 * (4 + 1)
    assert set(df.task) == {"previous_token", "induction", "duplicate_token"}
    assert (df.source == "heads").all() and (df.rung == "tiny").all() and (df.n == 6).all()
    assert df.value.between(0, 1).all()
    for (task, layer), g in df.groupby(["task", "layer"]):
        assert g.loc[g.metric == "max", "value"].item() == pytest.approx(g.loc[g.metric != "max", "value"].max())
    # scores equal the pure functions applied to the full attention tensor (batching does not change them)
    seqs = repeated_random_tokens(40, n_seq=6, period=8, seed=0)
    attn = extract_attentions(model, seqs)
    expected = induction_score(attn[1], 8)
    got = df[(df.task == "induction") & (df.layer == 1) & (df.metric != "max")].sort_values("metric").value.to_numpy()
    assert got == pytest.approx(expected, abs=1e-6)
    expected = duplicate_token_score(attn[0], seqs)
    got = df[(df.task == "duplicate_token") & (df.layer == 0) & (df.metric != "max")].sort_values("metric").value.to_numpy()
    assert got == pytest.approx(expected, abs=1e-6)
    assert model.config._attn_implementation == "sdpa"  # switched to eager for the call only

"""Worlds are deterministic: same seed and parameters → byte-identical corpus, tasks and latents."""
from __future__ import annotations

import numpy as np

from emergelab.worlds import WORLDS, make_world
from tests.test_worlds_text import write_sample_corpus


def _fingerprint(world) -> bytes:
    parts = [world.train_blocks(50, 32).tobytes(), world.heldout_world().train_blocks(5, 32).tobytes()]
    for ts in world.tasks(20):
        parts += [repr([(e.prompt, e.target, e.choices) for e in ts.examples]).encode()]
    for ls in world.latents(10, 32):
        parts += [ls.input_ids.tobytes(), ls.labels.tobytes()]
    return b"".join(parts)


def test_every_world_is_deterministic_and_seed_sensitive(tmp_path):
    corpus = write_sample_corpus(tmp_path / "corpus")
    for name in WORLDS:
        opts = {"corpus": str(corpus), "tokenizer": {"vocab_size": 400}} if name == "text" else {}
        a, b, c = (make_world(name, None, s, context=64, **opts) for s in (7, 7, 8))
        assert _fingerprint(a) == _fingerprint(b), name
        assert _fingerprint(a) != _fingerprint(c), name


def test_induction_repeats_are_exact_and_latent_marks_the_repeat():
    w = make_world("induction", {"vocab": 32, "min_period": 4, "max_period": 10}, 0)
    (ls,) = w.latents(50, 40)
    for ids, lab in zip(ls.input_ids, ls.labels):
        period = int(np.argmax(lab))  # first position in the repeat
        assert 4 <= period <= 10
        assert np.array_equal(ids[period:], ids[: 40 - period]) or np.all(ids[period:] == ids[np.arange(period, 40) % period])
    (ts,) = w.tasks(30)
    for e in ts.examples:
        seq = e.prompt + e.target
        period = len(e.prompt) - 1
        assert all(seq[i] == seq[i - period] for i in range(period, len(seq)))


def test_mixture_is_deterministic_in_its_block_choice_and_documents():
    args = {"components": [{"world": "modular", "weight": 0.3, "args": {"p": 7}},
                           {"world": "parity", "weight": 0.7}]}
    a, b, c = (make_world("mixture", args, s, context=64) for s in (3, 3, 4))
    assert "mixture" in WORLDS
    assert _fingerprint(a) == _fingerprint(b)
    assert _fingerprint(a) != _fingerprint(c)
    assert a.documents(12) == b.documents(12)
    owner_a = a.train_blocks(64, 16).max(axis=1) < a.offsets[1]  # which component each block came from
    owner_c = c.train_blocks(64, 16).max(axis=1) < c.offsets[1]
    assert not np.array_equal(owner_a, owner_c)  # the weighted choice itself follows the seed

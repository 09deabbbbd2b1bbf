"""Lookup world: answers are the dictionary's values, keys follow the Zipf law, latents sit where values are predicted."""
from __future__ import annotations

import numpy as np
import pytest

from emergelab.errors import UserError
from emergelab.worlds import make_world
from emergelab.worlds.lookup import EQUALS, FIRST_KEY, SEMI
from emergelab.worlds.parity import zipf_probabilities


def _small(**args):
    return make_world("lookup", {"n_keys": 3, "key_tokens": 2, "n_values": 4, "length": 2, **args}, 5)


def test_encode_by_hand():
    """n_keys 3, key_tokens 2: entry 7 is spelled (2, 1) -> k2 k1, entry 3 is (1, 0) -> k1 k0."""
    w = _small()
    f = w.dictionary
    assert w.spell(np.array([7, 3, 0])).tolist() == [[2, 1], [1, 0], [0, 0]]
    row = w.encode(np.array([[7, 3]]))[0].tolist()
    k = FIRST_KEY
    v = FIRST_KEY + 3  # value symbols follow the 3 key symbols
    assert row == [k + 2, k + 1, k + 1, k + 0, EQUALS, v + int(f[7]), v + int(f[3]), SEMI]
    assert w.render(row).startswith("k2 k1 k1 k0 = v") and w.width == 8
    assert len(w.symbols) == 2 + 3 + 4 and w.n_entries == 9


def test_task_targets_are_the_dictionary_values_of_the_prompt_keys():
    w = make_world("lookup", {"n_keys": 5, "key_tokens": 2, "n_values": 7, "length": 4}, 1)
    (ts,) = w.tasks(60)
    assert ts.name == "lookup" and ts.answer_length == 4 and ts.fewshot_delimiter == [SEMI]
    assert ts.chance == {"exact_match": pytest.approx(7.0 ** -4), "token_accuracy": pytest.approx(1 / 7)}
    for e in ts.examples:
        assert len(e.prompt) == 9 and e.prompt[-1] == EQUALS
        keys = np.array(e.prompt[:-1]) - FIRST_KEY
        entries = keys[0::2] * 5 + keys[1::2]
        assert e.target == (w.dictionary[entries] + FIRST_KEY + 5).tolist()


def test_training_rows_start_at_an_example_and_hold_whole_examples():
    w = make_world("lookup", {"n_keys": 4, "key_tokens": 1, "n_values": 4, "length": 3}, 2)
    rows = w.train_blocks(20, 19)  # width 8: two whole examples, then the first 3 tokens of a third
    assert rows.shape == (20, 19)
    assert (rows[:, 3] == EQUALS).all() and (rows[:, 7] == SEMI).all() and (rows[:, 11] == EQUALS).all()
    for r in rows:
        for s in (0, 8):
            keys = r[s:s + 3] - FIRST_KEY
            assert (r[s + 4:s + 7] == w.dictionary[keys] + FIRST_KEY + 4).all()


def test_entry_frequencies_follow_zipf_by_rank():
    w = make_world("lookup", {"n_keys": 4, "key_tokens": 1, "n_values": 3, "length": 5, "alpha": 0.0}, 3)
    assert np.allclose(w.frequencies, np.array([12, 6, 4, 3]) / 25)  # ∝ 1, 1/2, 1/3, 1/4
    assert w.order.tolist() == [0, 1, 2, 3]  # one key token: k0 is the most frequent
    keys = w.train_blocks(400, 12)[:, :5].reshape(-1) - FIRST_KEY
    counts = np.bincount(keys, minlength=4)
    n, p = len(keys), zipf_probabilities(4, 0.0)
    assert np.all(np.abs(counts - n * p) < 5 * np.sqrt(n * p * (1 - p))), counts
    two = make_world("lookup", {"n_keys": 6, "key_tokens": 2}, 3)
    assert sorted(two.order.tolist()) == list(range(36)) and two.order.tolist() != list(range(36))


def test_bands_split_the_probability_mass_in_quarters_by_rank():
    w = make_world("lookup", {"n_keys": 4, "key_tokens": 1, "n_values": 3, "alpha": 0.0}, 0)
    # mass before each rank: 0, 12/25, 18/25, 22/25 -> quarters 0, 1, 2, 3
    assert w.bands.tolist() == [0, 1, 2, 3]


def test_latents_label_the_positions_that_predict_each_value():
    w = _small()
    key_1, key_2, band = w.latents(6, 16)
    assert [ls.name for ls in (key_1, key_2, band)] == ["key_1", "key_2", "band"]
    assert key_1.label_names == ["k0", "k1", "k2"] and band.label_names == ["head", "upper", "lower", "tail"]
    for r in range(6):
        ids = key_1.input_ids[r]
        for s in (0, 8):  # two examples of width 8 per row: k k k k = v v ;
            assert (key_1.labels[r, s:s + 4] == -1).all() and (key_1.labels[r, s + 6:s + 8] == -1).all()
            keys = ids[s:s + 4] - FIRST_KEY
            assert key_1.labels[r, s + 4:s + 6].tolist() == [keys[0], keys[2]]  # '=' predicts value 1, value 1 predicts 2
            assert key_2.labels[r, s + 4:s + 6].tolist() == [keys[1], keys[3]]
            entries = keys[0::2] * 3 + keys[1::2]
            assert band.labels[r, s + 4:s + 6].tolist() == w.bands[entries].tolist()
    assert [(m.task, m.signal) for m in w.mechanisms()] == [("lookup", "key_1"), ("lookup", "key_2")]
    one = make_world("lookup", {"key_tokens": 1, "n_keys": 8}, 0)
    assert [ls.name for ls in one.latents(2, 16)] == ["key", "band"]


def test_a_context_too_short_for_prompt_and_answer_is_one_clear_error():
    w = make_world("lookup", {"length": 6, "key_tokens": 2}, 0, context=16)  # prompt 13 + answer 6 = 19 tokens
    with pytest.raises(UserError, match="raise train.seq_len to at least 20"):
        w.tasks(2)


def test_too_many_entries_is_refused():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="more than 1,048,576"):
        make_world("lookup", {"n_keys": 2048, "key_tokens": 2}, 0)


def test_mixes_beside_induction_with_its_own_symbols():
    args = {"components": [{"world": "induction", "weight": 0.5, "args": {"vocab": 16, "max_period": 8}},
                           {"world": "lookup", "weight": 0.5, "args": {"n_keys": 4, "n_values": 4, "length": 3}}]}
    m = make_world("mixture", args, 0, context=16)
    own = make_world("lookup", {"n_keys": 4, "n_values": 4, "length": 3}, 0, context=16)
    assert len(m.symbols) == 16 + len(own.symbols) and m.offsets.tolist() == [0, 16]
    (_, ts) = m.tasks(5)
    assert ts.name == "lookup"
    assert [e.target for e in ts.examples] == [[t + 16 for t in e.target] for e in own.tasks(5)[0].examples]
    assert {(x.task, x.signal) for x in m.mechanisms()} >= {("lookup", "key_1"), ("lookup", "key_2")}

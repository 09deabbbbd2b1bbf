"""Parity world: Zipf subtask frequencies, correct sparse parities, the subtask latent."""
from __future__ import annotations

import numpy as np

from emergelab.worlds import make_world
from emergelab.worlds.parity import zipf_probabilities


def test_zipf_probabilities_known_answer():
    p = zipf_probabilities(3, 1.0)  # ∝ 1, 1/4, 1/9
    assert np.allclose(p, np.array([36, 9, 4]) / 49)


def test_training_subtask_frequencies_follow_zipf_within_sampling_error():
    w = make_world("parity", {"n_tasks": 10, "n_bits": 8, "alpha": 0.4}, 0)
    stream = w.train_blocks(400, 60).reshape(-1)
    tasks = stream[stream >= 4] - 4
    n = len(tasks)
    counts = np.bincount(tasks, minlength=10)
    expected = zipf_probabilities(10, 0.4)
    z = (counts - n * expected) / np.sqrt(n * expected * (1 - expected))
    assert n > 1500 and np.all(np.abs(z) < 5), z
    chi2 = float(np.sum((counts - n * expected) ** 2 / (n * expected)))
    assert chi2 < 40  # 9 degrees of freedom: p ≈ 5e-6 at 40
    assert counts[0] > 3 * counts[-1]  # the head subtask dominates


def test_answers_are_the_parity_of_each_subtasks_bits():
    w = make_world("parity", {"n_tasks": 6, "n_bits": 12, "k": 3}, 1)
    subsets = w.subsets
    assert subsets.shape == (6, 3) and all(len(set(s)) == 3 for s in subsets.tolist())
    sets = w.tasks(40)
    assert [ts.name for ts in sets] == [f"parity-{i}" for i in range(6)] + ["parity-all"]
    for i, ts in enumerate(sets[:6]):
        ys = []
        for e in ts.examples:
            assert e.prompt[0] == 4 + i and e.prompt[-1] == 2 and len(e.prompt) == 14
            bits = np.array(e.prompt[1:13])
            assert e.target == [int(bits[subsets[i]].sum() % 2)]
            ys.append(e.target[0])
        assert 0 < np.mean(ys) < 1
    stream = w.train_blocks(30, 32).reshape(-1)
    starts = np.flatnonzero(stream >= 4)
    for s in starts:
        if s + 14 < len(stream):
            t, bits, y = stream[s] - 4, stream[s + 1:s + 13], stream[s + 14]
            assert y == bits[subsets[t]].sum() % 2


def test_subtask_latent_labels_the_bits_and_equals_of_each_example():
    w = make_world("parity", {"n_tasks": 5, "n_bits": 6}, 2)
    (ls,) = w.latents(8, 20)
    ids, lab = ls.input_ids.reshape(-1), ls.labels.reshape(-1)
    for s in np.flatnonzero(ids >= 4):
        if s + 9 < len(ids):
            assert lab[s] == -1 and np.all(lab[s + 1:s + 8] == ids[s] - 4) and lab[s + 8] == lab[s + 9] == -1
    assert ls.label_names == [f"t{i}" for i in range(5)]


def test_parity_all_draws_the_training_mixture_and_answers_each_examples_subtask():
    w = make_world("parity", {"n_tasks": 5, "n_bits": 10, "k": 2, "alpha": 1.0}, 3)
    (ts,) = [t for t in w.tasks(2000) if t.name == "parity-all"]
    assert ts.chance == {"exact_match": 0.5, "token_accuracy": 0.5} and ts.fewshot_delimiter == [3]
    tasks = np.array([e.prompt[0] - 4 for e in ts.examples])
    for e, t in zip(ts.examples, tasks):
        bits = np.array(e.prompt[1:11])
        assert len(e.prompt) == 12 and e.prompt[-1] == 2 and e.target == [int(bits[w.subsets[t]].sum() % 2)]
    counts = np.bincount(tasks, minlength=5)
    expected = 2000 * zipf_probabilities(5, 1.0)  # ∝ 1, 1/4, 1/9, 1/16, 1/25
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), (counts, expected)
    assert ("parity-all", "subtask") in {(link.task, link.signal) for link in w.mechanisms()}


def test_answer_tokens_write_the_parity_as_even_or_odd_and_leave_the_rest_unchanged():
    plain = make_world("parity", {"n_tasks": 4, "n_bits": 6, "k": 2}, 5)
    named = make_world("parity", {"n_tasks": 4, "n_bits": 6, "k": 2, "answer_tokens": True}, 5)
    assert named.symbols == plain.symbols + ["even", "odd"]
    a, b = plain.train_blocks(20, 10), named.train_blocks(20, 10)
    answer = np.zeros_like(a, dtype=bool)
    answer.reshape(-1)[8::10] = True  # rows of 10 tokens: t, 6 bits, '=', y, ';'
    assert np.array_equal(a[~answer], b[~answer]) and np.array_equal(b[answer], a[answer] + 8)  # even = 8, odd = 9
    for tp, tn in zip(plain.tasks(30), named.tasks(30)):
        assert [e.prompt for e in tp.examples] == [e.prompt for e in tn.examples]
        assert [e.target[0] + 8 for e in tp.examples] == [e.target[0] for e in tn.examples]
        assert all(e.choices == [[0], [1]] for e in tp.examples) and all(e.choices == [[8], [9]] for e in tn.examples)

"""Arithmetic world: answers are right, carries are right, and held-out problems never reach training."""
from __future__ import annotations

import numpy as np
import pytest

from emergelab.worlds import make_world
from emergelab.worlds.arithmetic import EQUALS, SEMI, SYMBOLS, answer_length, column_carries


def _number(tokens) -> int:
    return int("".join(SYMBOLS[t] for t in tokens))


def _carries_by_hand(a: int, b: int, op: str, n: int) -> list[int]:
    """Carry into each answer column (most significant first), by schoolbook arithmetic on Python ints."""
    L = answer_length(op, n)
    da = [(a // 10 ** i) % 10 for i in range(n)]
    db = [(b // 10 ** i) % 10 for i in range(n)]
    cols = [0] * L
    for i in range(n):
        if op == "add":
            cols[i] += da[i] + db[i]
        else:
            for j in range(n):
                cols[i + j] += da[i] * db[j]
    carry, out = 0, []
    for i in range(L):
        out.append(carry)
        carry = (cols[i] + carry) // 10
    assert carry == 0
    return out[::-1]


def test_task_answers_are_correct_zero_padded_and_msb_first():
    w = make_world("arithmetic", {"digits": [1, 3, 4], "ops": ["add", "mul"]}, 0)
    sets = {ts.name: ts for ts in w.tasks(50)}
    assert set(sets) == {"add-1", "add-3", "add-4", "mul-1", "mul-3", "mul-4"}
    for name, ts in sets.items():
        op, n = name.split("-")[0], int(name.split("-")[1])
        assert ts.answer_length == answer_length(op, n) and ts.fewshot_delimiter == [SEMI]
        assert ts.chance["exact_match"] == pytest.approx(10.0 ** -answer_length(op, n))
        for e in ts.examples:
            a, b = _number(e.prompt[:n]), _number(e.prompt[n + 1:2 * n + 1])
            assert SYMBOLS[e.prompt[n]] == ("+" if op == "add" else "*") and e.prompt[-1] == EQUALS
            assert len(e.target) == answer_length(op, n)
            assert _number(e.target) == (a + b if op == "add" else a * b)
    assert "".join(SYMBOLS[t] for t in sets["add-1"].examples[0].prompt).endswith("=")


def test_column_carries_match_schoolbook_arithmetic():
    rng = np.random.default_rng(0)
    for op in ("add", "mul"):
        for n in (1, 2, 3, 5):
            a, b = rng.integers(0, 10 ** n, 200), rng.integers(0, 10 ** n, 200)
            got = column_carries(a, b, op, n)
            for i in range(200):
                assert got[i].tolist() == _carries_by_hand(int(a[i]), int(b[i]), op, n)
    assert column_carries(np.array([99]), np.array([1]), "add", 2).tolist() == [[1, 1, 0]]
    assert column_carries(np.array([99]), np.array([99]), "mul", 2).tolist() == [[9, 17, 8, 0]]  # 9801


def test_carry_latent_sits_before_each_answer_digit():
    w = make_world("arithmetic", {"digits": [2, 3]}, 1)
    latents = {ls.name: ls for ls in w.latents(20, 48)}
    assert set(latents) == {"carry_add", "carry_mul"}
    assert latents["carry_add"].label_names == ["0", "1"] and len(latents["carry_mul"].label_names) == 28
    for op, ls in (("add", latents["carry_add"]), ("mul", latents["carry_mul"])):
        ids, lab = ls.input_ids.reshape(-1), ls.labels.reshape(-1)
        semis = np.flatnonzero(ids == SEMI)
        checked = 0
        for s0, s1 in zip(semis[:-1], semis[1:]):  # whole problems between two ';'
            row = ids[s0 + 1:s1 + 1]
            n = (int(np.flatnonzero(row == EQUALS)[0]) - 1) // 2
            a, b = _number(row[:n]), _number(row[n + 1:2 * n + 1])
            L = answer_length(op, n)
            assert _number(row[2 * n + 2:2 * n + 2 + L]) == (a + b if op == "add" else a * b)
            labels = lab[s0 + 1:s1 + 1]
            assert labels[2 * n + 1:2 * n + 1 + L].tolist() == _carries_by_hand(a, b, op, n)
            assert np.all(labels[:2 * n + 1] == -1) and np.all(labels[2 * n + 1 + L:] == -1)
            checked += 1
        assert checked > 20
        if op == "add":
            assert set(lab[lab >= 0].tolist()) == {0, 1}


def test_held_out_problems_never_appear_in_training_and_tasks_use_only_them():
    w = make_world("arithmetic", {"digits": [2], "ops": ["add"], "heldout_fraction": 0.2}, 3)
    a, b = np.meshgrid(np.arange(100), np.arange(100))
    held = w.is_heldout("add", 2, a.ravel(), b.ravel())
    assert abs(held.mean() - 0.2) < 5 * np.sqrt(0.2 * 0.8 / 10_000)  # the held-out fraction
    held_set = {(int(x), int(y)) for x, y, h in zip(a.ravel(), b.ravel(), held) if h}
    stream = w.train_blocks(200, 60).reshape(-1)
    semis = np.flatnonzero(stream == SEMI)
    seen = {(_number(stream[s + 1:s + 3]), _number(stream[s + 4:s + 6])) for s in semis[:-1] if s + 6 < len(stream)}
    assert len(seen) > 1000 and not (seen & held_set)
    (ts,) = w.tasks(100)
    assert all((_number(e.prompt[:2]), _number(e.prompt[3:5])) in held_set for e in ts.examples)
    heldout_blocks = w.heldout_world().train_blocks(20, 60).reshape(-1)
    semis = np.flatnonzero(heldout_blocks == SEMI)
    assert all((_number(heldout_blocks[s + 1:s + 3]), _number(heldout_blocks[s + 4:s + 6])) in held_set
               for s in semis[:-1] if s + 6 < len(heldout_blocks))


def test_training_mixes_operations_and_digit_counts_uniformly():
    w = make_world("arithmetic", {"digits": [1, 2, 3], "ops": ["add", "mul"]}, 0)
    stream = w.train_blocks(300, 64).reshape(-1)
    eq = np.flatnonzero(stream == EQUALS)
    kinds = []
    for e in eq[1:]:
        row = stream[:e][::-1]
        op_pos = next(i for i, t in enumerate(row) if SYMBOLS[t] in "+*")
        kinds.append((SYMBOLS[row[op_pos]], op_pos))
    counts = {k: kinds.count(k) for k in set(kinds)}
    assert len(counts) == 6
    # each (op, n) problem is drawn with probability 1/6; longer problems take more tokens but not more draws
    assert max(counts.values()) / min(counts.values()) < 1.3

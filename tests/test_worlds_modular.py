"""Modular world: exact train/held-out split, correct answers, Fourier latents in the right bins."""
from __future__ import annotations

import numpy as np

from emergelab.worlds import make_world
from emergelab.worlds.modular import FOURIER_BINS, fourier_bin


def _examples(stream: np.ndarray, p: int) -> list[tuple[int, int, int]]:
    """(a, b, c) of every whole ``a + b = c ;`` in a token stream."""
    semis = np.flatnonzero(stream == p + 2)
    return [tuple(int(x) for x in stream[s + 1:s + 6][[0, 2, 4]]) for s in semis if s + 6 < len(stream)]


def test_split_fractions_are_exact_and_disjoint():
    for p, frac in ((7, 0.5), (97, 0.3), (113, 0.3)):
        w = make_world("modular", {"p": p, "train_fraction": frac}, 0)
        train, held = w.split
        assert len(train) == round(frac * p * p) and len(train) + len(held) == p * p
        pairs = {tuple(x) for x in train.tolist()} | {tuple(x) for x in held.tolist()}
        assert len(pairs) == p * p  # disjoint and complete
    # the split depends on the seed
    a, b = make_world("modular", None, 0).split[0], make_world("modular", None, 1).split[0]
    assert {tuple(x) for x in a.tolist()} != {tuple(x) for x in b.tolist()}


def test_training_uses_only_training_pairs_and_answers_are_correct():
    w = make_world("modular", {"p": 13, "train_fraction": 0.4}, 2)
    p = 13
    train = {tuple(x) for x in w.split[0].tolist()}
    ex = _examples(w.train_blocks(100, 60).reshape(-1), p)
    assert len(ex) > 800 and all(c == (a + b) % p and (a, b) in train for a, b, c in ex)
    assert len({(a, b) for a, b, _ in ex}) == len(train)  # every training pair is seen
    held_ex = _examples(w.heldout_world().train_blocks(20, 60).reshape(-1), p)
    assert held_ex and all((a, b) not in train and c == (a + b) % p for a, b, c in held_ex)
    tasks = {ts.name: ts for ts in w.tasks(50)}
    assert set(tasks) == {"mod_heldout", "mod_train"}
    for e in tasks["mod_heldout"].examples:
        a, _, b, _ = e.prompt
        assert (a, b) not in train and e.target == [(a + b) % p]
    assert all((e.prompt[0], e.prompt[2]) in train for e in tasks["mod_train"].examples)
    assert len({tuple(e.prompt) for e in tasks["mod_heldout"].examples}) == 50  # without replacement


def test_fourier_latents_bin_cos_and_sin_of_the_inputs():
    p = 31
    w = make_world("modular", {"p": p, "fourier_k": [1, 3]}, 0)
    latents = {ls.name: ls for ls in w.latents(10, 36)}
    assert set(latents) == {f"{a}{fn}_k{k}" for a in ("", "answer_") for fn in ("cos", "sin") for k in (1, 3)}
    ls = latents["sin_k3"]
    assert ls.label_names == FOURIER_BINS
    ids, lab = ls.input_ids.reshape(-1), ls.labels.reshape(-1)
    for i in range(0, len(ids) - 5, 6):  # the stream starts at an example boundary
        a, b = ids[i], ids[i + 2]
        expect = [fourier_bin(np.sin(2 * np.pi * 3 * x / p)) for x in (a, b, a + b)]
        assert [lab[i], lab[i + 2], lab[i + 3]] == expect
        assert lab[i + 1] == lab[i + 4] == lab[i + 5] == -1
    assert fourier_bin(np.array([-1.0, -0.5, -0.01, 0.0, 0.49, 0.5, 1.0])).tolist() == [0, 1, 1, 2, 2, 3, 3]


def test_answer_fourier_latent_is_read_at_the_equals_sign_only_with_hand_computed_values():
    import numpy as np

    from emergelab.worlds.modular import FOURIER_BINS, ModularWorld, answer_fourier_bin

    # hand-computed, p = 97: 2π·30/97 = 1.9433 rad → cos −0.3635 (bin [-0.5,0)), sin 0.9316 (bin [0.5,1]);
    # 2π·2·(96+96)/97 = 2π·3.9588 → cos 0.9866 (bin [0.5,1]), sin −0.1620 (bin [-0.5,0))
    assert answer_fourier_bin(np.cos, 1, [10], [20], 97).tolist() == [1]
    assert answer_fourier_bin(np.sin, 1, [10], [20], 97).tolist() == [3]
    assert answer_fourier_bin(np.cos, 2, [96], [96], 97).tolist() == [3]
    assert answer_fourier_bin(np.sin, 2, [96], [96], 97).tolist() == [1]
    assert FOURIER_BINS[1] == "[-0.5,0)" and FOURIER_BINS[3] == "[0.5,1]"
    world = ModularWorld({"p": 97}, 0)
    latents = {ls.name: ls for ls in world.latents(8, 36)}
    z = latents["answer_cos_k2"]
    ids, lab = z.input_ids.reshape(-1), z.labels.reshape(-1)
    at = np.flatnonzero(lab >= 0)
    assert len(at) and (ids[at] == world.symbols.index("=")).all()  # only at '=': a per-token control reads nothing
    want = answer_fourier_bin(np.cos, 2, ids[at - 3], ids[at - 1], 97)
    assert (lab[at] == want).all()


def test_the_mechanism_map_links_held_out_addition_to_the_answer_s_fourier_features():
    from emergelab.worlds.modular import ModularWorld

    links = ModularWorld({}, 0).mechanisms()
    assert {(x.task, x.signal) for x in links if x.task == "mod_heldout"} == {
        ("mod_heldout", f"answer_{fn}_k{k}") for k in (1, 2) for fn in ("cos", "sin")}

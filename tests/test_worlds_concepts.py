"""Concepts world (GINC): HMM structure, documents that follow their concept's chain, ICL prompts."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from emergelab.worlds import hmm, make_world


def test_hmm_family_has_gincs_structure():
    w = make_world("concepts", None, 0)
    p, f = w.params, w.hmms
    S = p.n_values * p.n_slots
    assert f.trans.shape == (p.n_hmms, S, S) and f.start.shape == (p.n_hmms, S)
    assert np.allclose(f.trans.sum(-1), 1) and np.allclose(f.start.sum(-1), 1)
    for c in range(p.n_hmms):  # T[(v,s),(v',s')] = value_T[v,v'] · slot_T_c[s,s'], value chain shared
        assert np.allclose(f.trans[c].reshape(p.n_values, p.n_slots, p.n_values, p.n_slots),
                           np.einsum("ab,cd->acbd", f.value_T, f.slot_T[c]))
    assert np.all(np.diag(f.value_T) >= p.value_identity_coeff)
    assert np.all(f.table[:, 0] == 0) and f.table[:, 1:].min() >= 1 and f.table.max() < p.vocab
    # a start temperature of 10 makes the start distribution nearly uniform
    assert np.all(f.start.max(1) / f.start.min(1) < np.exp(1 / p.start_temp) + 1e-9)
    assert w.symbols[:4] == ["/", "a", "b", "c"] and len(w.symbols) == p.vocab


def test_documents_follow_their_concepts_transition_matrix_within_sampling_error():
    w = make_world("concepts", None, 3)
    p, f = w.params, w.hmms
    ns, S = p.n_slots, p.n_values * p.n_slots
    ids, states, which = w.sample_documents("test", 500, 500)
    assert np.array_equal(ids, f.table[states // ns, states % ns])  # emissions are deterministic
    assert set(which.tolist()) == set(range(p.n_concepts))
    checked = 0
    for c in range(p.n_concepts):
        st = states[which == c]
        counts = np.zeros((S, S))
        np.add.at(counts, (st[:, :-1].ravel(), st[:, 1:].ravel()), 1)
        n = counts.sum(1)
        rows = n >= 300
        for c2 in range(p.n_hmms):
            P = f.trans[c2][rows]
            # count deviations in standard deviations, with a slack of 3 counts for rare transitions
            # (a Poisson count of 1 where 0.002 were expected is not evidence against the chain)
            z = (np.abs(counts[rows] - n[rows, None] * P) - 3) / np.sqrt(n[rows, None] * P * (1 - P) + 1)
            if c2 == c:
                assert z.max() < 5, (c, z.max())  # its own chain: within sampling error
            else:
                assert z.max() > 20, (c, c2)  # any other concept's chain is clearly rejected
        checked += int(rows.sum())
    assert checked > 50


def test_training_stream_is_the_corpus_with_delimiters_then_reshuffled_epochs():
    w = make_world("concepts", {"n_docs": 6, "doc_length": 20}, 1)
    stream = w.train_blocks(14, 21).reshape(-1)  # two epochs of 6 × (20 + 1)
    docs = [tuple(d) for d in w._corpus.tolist()]
    epoch0 = [tuple(stream[i * 21:i * 21 + 20]) for i in range(6)]
    epoch1 = [tuple(stream[126 + i * 21:126 + i * 21 + 20]) for i in range(6)]
    assert epoch0 == docs and sorted(epoch1) == sorted(docs) and epoch1 != docs
    assert np.all(stream[20::21] == 0)  # every document ends with the delimiter
    held = w.heldout_world().train_blocks(2, 21).reshape(-1)
    assert tuple(held[:20]) not in set(docs) and np.array_equal(w.heldout_world().hmms.trans, w.hmms.trans)


def test_forward_filter_matches_brute_force_enumeration():
    rng = np.random.default_rng(0)
    S, V = 4, 3
    start = rng.dirichlet(np.ones(S))
    trans = rng.dirichlet(np.ones(S), size=S)
    emit = rng.dirichlet(np.ones(V), size=S)
    x = [2, 0, 1]
    joint = np.zeros(V)
    for path in itertools.product(range(S), repeat=len(x) + 1):
        pr = start[path[0]] * emit[path[0], x[0]]
        for t in range(1, len(x)):
            pr *= trans[path[t - 1], path[t]] * emit[path[t], x[t]]
        pr *= trans[path[len(x) - 1], path[len(x)]]
        joint += pr * emit[path[len(x)]]
    assert np.allclose(hmm.next_symbol_distribution(x, start, trans, emit), joint / joint.sum())


def test_icl_prompts_have_n_examples_of_k_tokens_and_fit_the_context():
    w = make_world("concepts", {"icl_k": [3, 5], "icl_n": [0, 2, 8, 16]}, 0, context=64)
    sets = {ts.name: ts for ts in w.tasks(30)}
    assert "icl-k5-n16" not in sets and "icl-k3-n16" not in sets  # 16·(k+1)+k > 64
    assert {"icl-k3-n8", "icl-k5-n8", "icl-ood-k3-n0", "icl-ood-k5-n2"} <= set(sets)
    for name, ts in sets.items():
        k, n = (int(s[1:]) for s in name.split("-")[-2:])
        for e in ts.examples:
            assert len(e.prompt) == n * (k + 1) + k - 1 and len(e.target) == 1
            assert all(e.prompt[j * (k + 1) + k] == 0 for j in range(n))  # delimiter after each example
            assert len(e.prompt) + 1 <= 64
    # more examples carry more information about the concept; targets are not a constant
    assert len({e.target[0] for e in sets["icl-k3-n8"].examples}) > 3


def test_icl_target_is_the_bayes_optimal_next_symbol_of_the_prompts_concept():
    w = make_world("concepts", {"vocab": 12, "n_values": 3, "n_slots": 4, "n_hmms": 4, "n_concepts": 2}, 5)
    f, p = w.hmms, w.params
    sym = f.table.reshape(-1)  # symbol of each hidden state
    for concept in range(p.n_hmms):
        T = f.trans[concept]
        rng = np.random.default_rng(concept)
        for _ in range(10):
            e = w._prompt(rng, concept, 2, 4)
            x = e.prompt[-3:]
            # the joint P(h0, h1, h2, h3) as one outer product over all hidden paths (no recursion), for
            # each start slot s ≥ 1 with a uniform value; the target must be the argmax for some s
            argmaxes = set()
            for s_ in range(1, p.n_slots):
                start = np.zeros(len(sym))
                start[s_::p.n_slots] = 1 / p.n_values
                paths = np.einsum("a,ab,bc,cd->abcd", start * (sym == x[0]), T * (sym == x[1])[None, :],
                                  T * (sym == x[2])[None, :], T)
                if paths.sum() > 0:
                    argmaxes.add(int(np.argmax(np.bincount(sym, weights=paths.sum((0, 1, 2)), minlength=p.vocab))))
            assert e.target[0] in argmaxes


@pytest.mark.parametrize("bad", [{"n_concepts": 11}, {"icl_k": [1]}, {"n_concepts": 10}, {"delimiter": "a b"}])
def test_bad_parameters_are_rejected(bad):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        make_world("concepts", bad, 0)

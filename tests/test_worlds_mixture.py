"""Mixture world: components keep their own id ranges, blocks come wholly from one component, and tasks
and latents are the components' own, shifted; bad components are one-line errors."""
from __future__ import annotations

import numpy as np
import pytest

from emergelab.errors import UserError
from emergelab.study import read_spec
from emergelab.worlds import make_world

MODULAR = {"p": 11, "train_fraction": 0.5, "fourier_k": [1]}
CONCEPTS = {"vocab": 20, "n_hmms": 4, "n_concepts": 2, "doc_length": 40, "n_docs": 20, "icl_k": [3], "icl_n": [0, 2]}


def _mixture(weights=(0.5, 0.5), seed=0):
    return make_world("mixture", {"components": [{"world": "modular", "weight": weights[0], "args": MODULAR},
                                                 {"world": "concepts", "weight": weights[1], "args": CONCEPTS}]},
                      seed, context=32)


def _parts(seed=0):
    return (make_world("modular", MODULAR, seed, context=32), make_world("concepts", CONCEPTS, seed, context=32))


def test_symbols_are_concatenated_in_component_order():
    w = _mixture()
    mod, con = _parts()
    assert w.symbols == mod.symbols + con.symbols
    assert list(w.offsets) == [0, len(mod.symbols)]


def test_each_block_comes_wholly_from_one_component_in_its_own_stream_order():
    w = _mixture()
    mod, con = _parts()
    blocks = w.train_blocks(200, 24)
    off = len(mod.symbols)
    from_mod = blocks.max(axis=1) < off
    from_con = blocks.min(axis=1) >= off
    assert np.all(from_mod | from_con)  # never a block that mixes the two vocabularies
    assert 60 < from_mod.sum() < 140  # the 0.5 / 0.5 weights, within sampling noise
    np.testing.assert_array_equal(blocks[from_mod], mod.train_blocks(int(from_mod.sum()), 24))
    np.testing.assert_array_equal(blocks[from_con] - off, con.train_blocks(int(from_con.sum()), 24))


def test_weights_set_the_share_of_blocks():
    w = _mixture(weights=(9, 1))
    blocks = w.train_blocks(1000, 12)
    share = np.mean(blocks.max(axis=1) < w.offsets[1])
    assert 0.85 < share < 0.95


def test_heldout_blocks_are_the_components_heldout_blocks():
    w = _mixture()
    mod, _ = _parts()
    held = w.heldout_world().train_blocks(100, 12)
    rows = held.max(axis=1) < w.offsets[1]
    np.testing.assert_array_equal(held[rows], mod.heldout_world().train_blocks(int(rows.sum()), 12))
    assert not np.array_equal(held, w.train_blocks(100, 12))


def test_tasks_and_latents_are_the_components_shifted():
    w = _mixture()
    mod, con = _parts()
    off = int(w.offsets[1])
    tasks = {t.name: t for t in w.tasks(5)}
    assert set(tasks) == {t.name for t in mod.tasks(5)} | {t.name for t in con.tasks(5)}
    for t in con.tasks(5):
        mixed = tasks[t.name]
        assert [e.prompt for e in mixed.examples] == [[x + off for x in e.prompt] for e in t.examples]
        assert [e.target for e in mixed.examples] == [[x + off for x in e.target] for e in t.examples]
        assert mixed.chance == t.chance
    assert tasks["mod_train"].fewshot_delimiter == mod.tasks(5)[1].fewshot_delimiter
    latents = {ls.name: ls for ls in w.latents(6, 20)}
    for ls in con.latents(6, 20):
        np.testing.assert_array_equal(latents[ls.name].input_ids, ls.input_ids + off)
        np.testing.assert_array_equal(latents[ls.name].labels, ls.labels)
        assert latents[ls.name].level == ls.level
    assert latents["concept"].level == "sequence"


def test_clashing_names_are_prefixed_and_same_world_twice_is_seeded_apart():
    w = make_world("mixture", {"components": [{"world": "modular", "args": MODULAR},
                                              {"world": "modular", "name": "m7", "args": {"p": 7}}]}, 0)
    assert len(set(w.symbols)) == len(w.symbols) == 14 + 10
    assert w.symbols[0] == "modular:0" and w.symbols[14] == "m7:0"
    names = [t.name for t in w.tasks(3)]
    assert names == ["modular:mod_heldout", "modular:mod_train", "m7:mod_heldout", "m7:mod_train"]
    assert "m7:cos_k1" in {ls.name for ls in w.latents(3, 12)}
    # no clash: names stay as the component's own
    assert "+" in _mixture().symbols and "mod_train" in {t.name for t in _mixture().tasks(2)}


def test_documents_render_and_describe():
    w = _mixture()
    docs = w.documents(10)
    assert len(docs) == 10 and all(isinstance(s, list) and s for d in docs for s in d)
    text = w.render(w.train_blocks(1, 12)[0])
    assert len(text.split()) == 12
    info = w.describe()["components"]
    assert info["modular"]["weight"] == 0.5 and info["concepts"]["first_symbol_id"] == int(w.offsets[1])


@pytest.mark.parametrize("components, message", [
    ([], "at least one component"),
    ([{"world": "text"}], "cannot be mixed"),
    ([{"world": "mixture"}], "cannot be mixed"),
    ([{"world": "nope"}], "cannot be mixed"),
    ([{"world": "modular", "weight": 0}], "0 is out of range; allowed: 0 < weight"),
    ([{"world": "modular", "args": {"p": 1}}], "component modular args.p"),
    ([{"world": "modular"}, {"world": "modular"}], "distinct `name:`"),
    ([{"world": "modular", "colour": 1}], "colour"),
])
def test_bad_components_are_one_line_user_errors(components, message):
    with pytest.raises(UserError) as exc:
        read_spec(preset="smoke", overrides=["world=mixture", f"world_args={{components: {components!r}}}"])
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_labelled_tasks_pass_through_with_symbols_in_the_mixture_vocabulary():
    w = _mixture()
    mod, con = _parts()
    assert w.labelled_tasks() == {**mod.labelled_tasks(), **con.labelled_tasks()}
    for name, part in (("concept", con), ("sum_cos_k1", mod)):
        got, own = w.labelled(name, 12, 24), part.labelled(name, 12, 24)
        assert got.labels == own.labels and got.label_names == own.label_names
        assert all(x in set(w.symbols) for t in got.texts for x in t.split(" "))
    tagged = w.labelled("slot", 4, 24)
    assert tagged.labels == con.labelled("slot", 4, 24).labels
    with pytest.raises(UserError, match="no labelled task 'colour'; allowed: sum_cos_k1"):
        w.labelled("colour", 4, 24)


def test_clashing_labelled_task_names_are_prefixed():
    w = make_world("mixture", {"components": [{"world": "concepts", "name": "a", "weight": 0.5, "args": CONCEPTS},
                                              {"world": "concepts", "name": "b", "weight": 0.5, "args": CONCEPTS}]},
                   0, context=32)
    assert "a:concept" in w.labelled_tasks() and "b:concept" in w.labelled_tasks()
    assert w.labelled("b:concept", 6, 24).task == "classify"


def test_documents_skip_a_component_whose_corpus_ran_out():
    w = _mixture()  # the concepts component holds 20 documents
    docs = w.documents(100)
    off = len(_parts()[0].symbols)
    from_con = [d for d in docs if min(min(s) for s in d) >= off]
    assert len(from_con) == 20 and 20 < len(docs) < 100
    assert docs == w.documents(100)  # seeded

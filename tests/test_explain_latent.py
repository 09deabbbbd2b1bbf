"""Latent onsets on a hand-built probe table, and the lead of a latent over a capability."""
import numpy as np
import pytest

from emergelab.explain import formulas as F
from emergelab.explain import synthetic as S
from emergelab.explain.latent import (
    latent_onsets,
    linked,
    median3,
    stays_above,
    world_of,
)
from emergelab.explain.runner import explain_table
from emergelab.spec.explain import ExplainOptions

PROBE_STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 128]
SEL = np.array([  # layers 0, 1, 2
    [0.02, 0.00, 0.00],
    [0.02, 0.00, 0.00],
    [0.02, 0.05, 0.00],
    [0.02, 0.15, 0.00],
    [0.02, 0.20, 0.00],
    [0.02, 0.05, 0.08],  # every layer dips below 0.1 at step 16
    [0.02, 0.30, 0.12],
    [0.02, 0.40, 0.20],
    [0.02, 0.50, 0.30],
])


def _onsets(threshold=0.1, extra=()):
    df = S.frame(S.probe_rows("concept", PROBE_STEPS, SEL), *extra)
    return {(o["latent"], o["axis"], o["rung"]): o for o in latent_onsets(df, threshold)}


def test_onset_is_where_the_best_layer_stays_above_the_threshold_one_dip_does_not_move_it():
    # every layer dips below 0.1 at step 16 once: the running median of three ignores that one dip
    o = _onsets()[("concept", "step", "r0")]
    assert o["onset"] == 4 and o["layer"] == 1 and o["selectivity_at_onset"] == pytest.approx(0.15)
    assert o["final_selectivity"] == pytest.approx(0.5) and o["n_checkpoints"] == 9
    assert not o["first_checkpoint"] and "memorisation chance" in o["selectivity_of"]


def test_a_pure_noise_latent_has_no_persistent_onset():
    rng = np.random.default_rng(0)
    sel = rng.normal(0.0, 0.04, (len(PROBE_STEPS), 3))  # best of 3 noisy layers brushes 0.1 now and then
    sel[-1] = 0.11
    rows = S.probe_rows("noise", PROBE_STEPS, sel)
    for r in rows:
        r["n"] = 512
    (o,) = [o for o in latent_onsets(S.frame(rows), 0.1, n_rep=200) if o["axis"] == "step"]
    assert o["onset"] is None and o["persistence"] < 0.8


def test_a_clear_latent_onset_has_an_interval():
    sel = np.where(np.array(PROBE_STEPS)[:, None] >= 8, 0.4, 0.0) * np.array([[0.0, 1.0]])
    rows = S.probe_rows("clear", PROBE_STEPS, sel)
    for r in rows:
        r["n"] = 512
    (o,) = [o for o in latent_onsets(S.frame(rows), 0.1, n_rep=200) if o["axis"] == "step"]
    assert o["onset"] == 8 and o["persistence"] == 1.0 and o["onset_ci"] == [8.0, 8.0]


def test_links_are_the_same_world():
    assert world_of("arith:carry") == "arith" and world_of("carry") == ""
    assert linked("arith:carry", "arith:add-3") and not linked("arith:carry", "modular:mod_heldout")
    assert linked("concept", "icl") and not linked("concept", "modular:mod_heldout")


def test_a_lower_threshold_moves_the_onset_earlier():
    assert _onsets(0.04)[("concept", "step", "r0")]["onset"] == 2


def test_no_onset_when_the_last_checkpoint_is_below_the_threshold():
    late = SEL.copy()
    late[-1] = 0.05
    o = _onsets(extra=[S.probe_rows("state", PROBE_STEPS, late)])[("state", "step", "r0")]
    assert o["onset"] is None and o["layer"] is None


def test_stays_above_and_median3():
    assert stays_above(np.array([0.2, 0.2, 0.2, 0.2]), 0.1)[0] == 0
    assert stays_above(np.array([0.2, 0.0, 0.2, 0.2]), 0.1)[0] == 2
    assert stays_above(np.array([0.2, 0.2, 0.2, 0.0]), 0.1)[0] == -1
    assert stays_above(np.array([0.0, 0.0, 0.0, 0.2]), 0.1)[0] == -1  # one last checkpoint is no onset
    np.testing.assert_allclose(median3(np.array([0.0, 0.2, 0.0, 0.2, 0.2])), [0.0, 0.0, 0.2, 0.2, 0.2])


def test_onset_on_the_params_axis_uses_each_rungs_final_checkpoint():
    rows = []
    for n, final in ((10 ** 6, 0.05), (10 ** 7, 0.2), (10 ** 8, 0.3)):
        sel = np.array([[0.0, 0.0], [0.0, final], [0.0, final]])
        rows += S.probe_rows("concept", [0, 100, 200], sel, rung=f"r{n}", n_params=n)
    onsets = {(o["axis"], o["rung"]): o for o in latent_onsets(S.frame(rows), 0.1)}
    assert onsets[("params", None)]["onset"] == 10 ** 7
    assert onsets[("step", "r1000000")]["onset"] is None and onsets[("step", "r100000000")]["onset"] == 100


STEPS = np.unique(np.round(np.logspace(0, 4, 15)).astype(int))


@pytest.mark.parametrize("latent_step,relation", [(27, "lead"), (2683, "lag")])
def test_latent_lead_or_lag_over_an_emergent_capability(latent_step, relation):
    rng = np.random.default_rng(0)
    y = F.sigmoid_in_log(STEPS, 0.0, 0.9, 2.5, 15.0) + rng.normal(0, 0.02, len(STEPS))
    sel = np.where(STEPS[:, None] >= latent_step, 0.4, 0.0) * np.array([[0.0, 1.0]])
    df = S.frame(S.step_rows("copy", "exact_match", STEPS, y), S.probe_rows("concept", STEPS, sel))
    res = explain_table(df, ExplainOptions(axes=("step",), n_bootstrap=100))
    (lead,) = res["latent_leads"]
    assert lead["lead_ci"] is not None
    assert lead["latent_onset"] == latent_step and lead["verdict"] == "emergent"
    assert lead["capability_onset"] == pytest.approx(10 ** 2.5, rel=0.25)
    assert lead["relation"] == relation
    lo, hi = lead["lead_ci"]
    assert lo <= lead["lead"] <= hi
    assert (lo > 0) if relation == "lead" else (hi < 0)
    assert np.sign(lead["lead_decades"]) == (1 if relation == "lead" else -1)


def test_leads_pair_only_latents_and_tasks_of_the_same_world_unless_all_are_asked():
    rng = np.random.default_rng(0)
    y = F.sigmoid_in_log(STEPS, 0.0, 0.9, 2.5, 15.0) + rng.normal(0, 0.02, len(STEPS))
    sel = np.where(STEPS[:, None] >= 27, 0.4, 0.0) * np.array([[0.0, 1.0]])
    df = S.frame(S.step_rows("a:copy", "exact_match", STEPS, y), S.probe_rows("a:pos", STEPS, sel),
                 S.probe_rows("b:pos", STEPS, sel))
    linked_only = explain_table(df, {"axes": ("step",), "n_bootstrap": 50})["latent_leads"]
    every = explain_table(df, {"axes": ("step",), "n_bootstrap": 50, "leads": "all"})["latent_leads"]
    mapped = explain_table(df, {"axes": ("step",), "n_bootstrap": 50},
                           allowed=lambda latent, task: latent == "b:pos")["latent_leads"]
    assert [r["latent"] for r in linked_only] == ["a:pos"]
    assert sorted(r["latent"] for r in every) == ["a:pos", "b:pos"]
    assert [r["latent"] for r in mapped] == ["b:pos"]


def test_no_lead_for_a_smooth_capability():
    y = 0.1 + 0.2 * np.log10(STEPS)
    sel = np.where(STEPS[:, None] >= 27, 0.4, 0.0) * np.array([[0.0, 1.0]])
    df = S.frame(S.step_rows("copy", "exact_match", STEPS, y), S.probe_rows("concept", STEPS, sel))
    res = explain_table(df, {"axes": ("step",), "n_bootstrap": 50})
    assert res["curves"][0]["verdict"] == "smooth" and res["latent_leads"] == []


def test_the_mechanism_map_restricts_leads_to_its_declared_links(tmp_path):
    """Two latents of one world both become decodable before the copy task emerges; the world's map links
    only one of them to it, and only that one gets a lead (``run_explain`` with the study's links)."""
    from emergelab.explain.runner import run_explain
    from emergelab.measurements import write_part

    rng = np.random.default_rng(0)
    y = F.sigmoid_in_log(STEPS, 0.0, 0.9, 2.5, 15.0) + rng.normal(0, 0.02, len(STEPS))
    sel = np.where(STEPS[:, None] >= 27, 0.4, 0.0) * np.array([[0.0, 1.0]])
    df = S.frame(S.step_rows("copy", "exact_match", STEPS, y), S.probe_rows("pos", STEPS, sel),
                 S.probe_rows("colour", STEPS, sel))
    write_part(tmp_path / "m.parquet", df)
    opts = {"axes": ("step",), "n_bootstrap": 50}
    mapped = run_explain(tmp_path / "m.parquet", tmp_path / "e.json", opts, links=[("pos", "copy")])["latent_leads"]
    unmapped = run_explain(tmp_path / "m.parquet", tmp_path / "f.json", opts)["latent_leads"]
    assert [r["latent"] for r in mapped] == ["pos"]
    assert sorted(r["latent"] for r in unmapped) == ["colour", "pos"]  # same world by name: both, without a map
    every = run_explain(tmp_path / "m.parquet", tmp_path / "g.json", {**opts, "leads": "all"}, links=[("pos", "copy")])
    assert sorted(r["latent"] for r in every["latent_leads"]) == ["colour", "pos"]  # `all` overrides the map

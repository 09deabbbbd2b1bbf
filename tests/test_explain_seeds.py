"""Seeds are replicates in explain: one curve per (task, metric, axis, rung) from the mean of the seeds,
each seed's own verdict, and how many agree."""
import numpy as np

from emergelab.explain import formulas as F
from emergelab.explain import synthetic as S
from emergelab.explain.runner import explain_table

STEPS = np.unique(np.round(np.logspace(0, 4, 15)).astype(int))


def _seed(rows: list[dict], seed: int) -> list[dict]:
    return [{**r, "seed": seed} for r in rows]


def _table(midpoints: list[float], noise: float = 0.01):
    rows = []
    for seed, mid in enumerate(midpoints):
        rng = np.random.default_rng(seed)
        y = F.sigmoid_in_log(STEPS, 0.0, 0.9, mid, 15.0) + rng.normal(0, noise, len(STEPS))
        rows += _seed(S.step_rows("copy", "exact_match", STEPS, y), seed)
    return S.frame(rows)


def test_three_seeds_that_all_jump_agree_3_of_3():
    res = explain_table(_table([2.4, 2.5, 2.6]), {"axes": ("step",), "n_bootstrap": 100})
    (rec,) = [r for r in res["curves"] if r["task"] == "copy"]
    assert rec["n_seeds"] == 3
    assert rec["seed_verdicts"] == ["emergent"] * 3
    assert rec["seed_agreement"] == "emergent in 3/3 seeds"


def test_a_seed_that_never_learns_breaks_the_agreement():
    df = _table([2.5, 2.5])
    flat = _seed(S.step_rows("copy", "exact_match", STEPS, np.full(len(STEPS), 0.001)), 2)
    res = explain_table(S.frame(df.to_dict("records"), flat), {"axes": ("step",), "n_bootstrap": 100})
    (rec,) = [r for r in res["curves"] if r["task"] == "copy"]
    assert rec["seed_verdicts"][:2] == ["emergent", "emergent"] and rec["seed_verdicts"][2] == "not learned"
    assert rec["seed_agreement"] == "emergent in 2/3 seeds"


def test_a_single_seed_has_no_agreement_record():
    res = explain_table(_table([2.5]), {"axes": ("step",), "n_bootstrap": 50})
    assert "seed_agreement" not in res["curves"][0]

"""The report's content on a small hand-made study whose answers are known: number formats, identical
metrics shown once, the grid's pooled cells, the first screen's answer lines, the mechanism section
(present and absent), and that no long table lies open on the page."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from emergelab.measurements import make_frame, write_part
from emergelab.report import fmt
from emergelab.report.build import build_report
from emergelab.report.capabilities import capabilities, identical_metrics

RUNGS = [("R1", 1_000), ("R2", 29_000), ("R3", 1_234_567)]
STEPS = [0, 10, 100, 1000, 2000]
SEEDS = [0, 1]


def _sigmoid(step: float, mid: float) -> float:
    return 0.0 if step == 0 else float(1 / (1 + np.exp(-4 * (np.log10(step) - np.log10(mid)))))


def synthetic_rows() -> list[dict]:
    """a:copy rises sharply (exact match = per-token accuracy = 1 − edit distance); b:sum smoothly."""
    rows = []
    for (rung, n), mid in zip(RUNGS, (1e6, 1500, 400)):
        for step in STEPS:
            for seed in SEEDS:
                base = {"rung": rung, "n_params": n, "step": step, "tokens": step * 512, "flops": 6.0 * n * step * 512 + 0.0,
                        "seed": seed, "n": 200}
                em = min(1.0, _sigmoid(step, mid) + 0.01 * seed)
                for metric, v in (("exact_match", em), ("token_accuracy", em), ("edit_distance", 1 - em),
                                  ("target_logprob", -3 + 2.5 * em + 0.1 * np.log1p(step))):
                    rows.append({**base, "source": "eval", "task": "a:copy", "metric": metric, "value": v, "stderr": 0.02})
                rows.append({**base, "source": "eval", "task": "b:sum", "metric": "exact_match",
                             "value": 0.3 * np.log1p(step) / np.log1p(2000) * (1 + RUNGS.index((rung, n))) / 3, "stderr": 0.02})
                rows.append({**base, "source": "eval", "task": "heldout", "metric": "loss", "value": 3 - 0.2 * np.log1p(step)})
                rows.append({**base, "source": "train", "task": "pretrain", "metric": "loss", "value": 3 - 0.2 * np.log1p(step)})
                for layer in (0, 1):
                    rows.append({**base, "source": "probe", "task": "a:pos", "layer": layer, "metric": "selectivity",
                                 "value": 0.4 * _sigmoid(step, mid / 3) * layer})
                rows.append({**base, "source": "heads", "task": "induction", "layer": 1, "metric": "max", "value": 0.9 * _sigmoid(step, mid)})
                for metric, v in (("drop", em), ("control_drop", 0.02), ("specificity", em - 0.02)):
                    rows.append({**base, "source": "mechanism", "task": "a:copy", "metric": metric, "value": v, "stderr": 0.01})
    for task in ("a:copy", "b:sum"):
        rows.append({"source": "eval", "task": task, "metric": "chance/exact_match", "value": 0.05, "step": -1})
    return rows


def _curve(task, metric, axis, rung, verdict, share, x, y, onset=None, **kw) -> dict:
    return {"task": task, "metric": metric, "k_shot": 0, "axis": axis, "rung": rung, "verdict": verdict, "verdict_share": share,
            "label": f"{verdict} ({share:.2f})", "evidence": f"{verdict} along {axis}", "flags": [], "x": x, "y": y,
            "log_x": axis != "loss", "onset": onset, "fits": {}, "best_model": None, **kw}


def synthetic_explanations(mechanisms: bool = True) -> dict:
    curves = []
    for metric in ("exact_match", "token_accuracy", "edit_distance", "target_logprob"):
        sharp = metric != "target_logprob"
        for (rung, _), onset in zip(RUNGS, (None, 1500.4, 400.2)):
            verdict = "emergent" if sharp and onset else ("not learned" if sharp else "smooth")
            curves.append(_curve("a:copy", metric, "step", rung, verdict, 0.9, STEPS, [0.0] * 5,
                                 {"x": onset, "ci": [1000.2, 2000.0] if rung == "R2" else [250.0, 600.7]} if verdict == "emergent" else None,
                                 seed_agreement=f"{verdict} in 2/2 seeds"))
        curves.append(_curve("a:copy", metric, "params", None, "emergent" if sharp else "smooth", 0.97, [1e3, 2.9e4, 1.2e6], [0, 0.5, 1],
                             {"x": 29_000.0, "ci": [12_345.0, 61_000.0]} if sharp else None,
                             fits={"power_law": {"params": {"a": 0.0, "b": 0.1, "c": 0.2}, "r2": 0.95}}, best_model="power_law"))
    for rung, _ in RUNGS:
        curves.append(_curve("b:sum", "exact_match", "step", rung, "smooth", 0.8, STEPS, [0.0] * 5))
    curves.append(_curve("b:sum", "exact_match", "params", None, "smooth", 0.99, [1e3, 2.9e4, 1.2e6], [0.1, 0.2, 0.3],
                         fits={"power_law": {"params": {"a": 0.0, "b": 0.1, "c": 0.2}, "r2": 0.5}}, best_model="power_law"))
    leads = [{"latent": "a:pos", "task": "a:copy", "metric": "exact_match", "k_shot": 0, "axis": "step", "rung": "R3", "verdict": "emergent",
              "latent_onset": 150.3, "latent_onset_ci": [100.0, 200.0], "capability_onset": 400.2, "capability_ci": [250.0, 600.7],
              "lead": 1666.1995419242157, "lead_ci": [120.0, 401.5], "lead_decades": 0.4, "relation": "lead"}]
    onsets = [{"latent": "a:pos", "axis": "step", "rung": "R3", "onset": 150.3, "onset_ci": [100.0, 200.0], "layer": 1,
               "final_selectivity": 0.4, "persistence": 0.9, "threshold": 0.1}]
    out = {"schema_version": 2, "curves": curves, "latent_onsets": onsets, "latent_leads": leads}
    if mechanisms:
        out["mechanisms"] = [{"signal": sig, "task": "a:copy", "metric": "exact_match", "axis": "step", "rung": rung,
                              "signature_onset": {"x": 150.0, "ci": [100.0, 200.0]}, "capability_onset": {"x": 400.2, "ci": [250.0, 600.7]},
                              "load_bearing_onset": {"x": 500.0, "ci": [400.0, 700.0]} if lb else None,
                              "status": "load-bearing" if lb else "observed", "why": "planted"}
                             for sig in ("heads/induction", "a:pos") for rung, lb in (("R2", False), ("R3", sig == "heads/induction"))]
    return out


def make_study(root: Path, mechanisms: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    df = make_frame(synthetic_rows())
    if not mechanisms:
        df = df[df.source != "mechanism"]
    write_part(root / "measurements.parquet", df)
    (root / "explanations.json").write_text(json.dumps(synthetic_explanations(mechanisms)))
    return root


class _Tables(HTMLParser):
    """Rows of each table, and whether it sits inside a <details>."""

    def __init__(self):
        super().__init__()
        self.depth, self.tables = 0, []

    def handle_starttag(self, tag, attrs):
        if tag == "details":
            self.depth += 1
        elif tag == "table":
            self.tables.append({"rows": 0, "collapsed": self.depth > 0, "class": dict(attrs).get("class", "")})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"] += 1

    def handle_endtag(self, tag):
        if tag == "details":
            self.depth -= 1


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> str:
    return build_report(make_study(tmp_path_factory.mktemp("rep") / "study")).read_text()


def test_numbers_are_formatted_for_reading():
    assert [fmt.count(n) for n in (512, 1328, 29_000, 1_234_567, np.int64(103_616))] == ["512", "1.3k", "29k", "1.2M", "104k"]
    assert fmt.step(1666.1995419242157) == "1,666" and fmt.interval("step", [1500.7, 1000.2]) == "[1,000, 1,501]"
    assert fmt.interval("params", [12_345.0, 61_000.0]) == "[12k, 61k]" and fmt.sci(3.4e12) == "3.4e12"
    assert fmt.signed("step", -250.4) == "−250 steps" and fmt.interval("step", None) == ""


def test_identical_metrics_are_shown_once():
    df = make_frame(synthetic_rows())
    shown, same = identical_metrics(df, "a:copy", 0)
    assert shown == ["exact_match", "target_logprob"]
    assert same == {"exact_match": ["per-token accuracy", "1 − edit distance"]}


def test_grid_cells_pool_the_rungs():
    caps = {c.task: c for c in capabilities(make_frame(synthetic_rows()), synthetic_explanations())}
    cell = caps["a:copy"].cells[("exact_match", "step")]
    assert (cell.verdict, cell.text) == ("emergent", "emergent in 2/3 rungs (not learned 1)")
    assert caps["a:copy"].answer_cell().axis == "params" and caps["b:sum"].cells[("exact_match", "step")].text == "smooth in 3/3 rungs"


def test_first_screen_answers_each_capability(page):
    first = page.split("<nav>")[0]
    lines = re.findall(r"<li>(.*?)</li>", first.split("class='answers'")[1])
    assert len(lines) == 2
    copy = re.sub("<[^>]+>", "", lines[0])
    assert "a:copy emergent 0.97 on exact match vs parameters" in copy
    assert "onset 29k params [12k, 61k]" in copy and "steps: emergent in 2/3 rungs" in copy
    assert "latent a:pos leads by 1,666 steps [120, 402] on R3" in copy  # raw float 1666.1995… formatted
    assert ("mechanism a:pos: observed in 2 rungs, signature leads by 250 steps on R3; "
            "heads/induction: load-bearing in 1/2 rungs, signature leads by 250 steps on R3") in copy
    assert "b:sum smooth 0.99 on exact match vs parameters" in re.sub("<[^>]+>", "", lines[1])
    assert "World" not in first and "Ladder</b> 3 rungs: R1 (1.0k), R2 (29k), R3 (1.2M) params" in first


def test_grid_has_one_row_per_capability_and_a_panel_per_cell(page):
    grid = re.search(r"<table class='verdicts grid'>.*?</table>", page, re.S).group(0)
    assert grid.count("<th scope='row'>") == 2
    assert "per-token accuracy and 1 − edit distance equal exact match at every point (shown once)" in grid
    assert "token accuracy</th>" not in grid  # shown once
    panels = re.findall(r"data-panel='([^']+)'", grid)
    assert len(panels) == len(set(panels)) == 2 * 2 + 2  # a:copy: 2 shown metrics × (params, step); b:sum: 1 × 2
    for p in panels:
        assert f"class='cell-panel' id='{p}' hidden" in page


def test_no_long_table_is_left_open(page):
    parser = _Tables()
    parser.feed(page)
    assert parser.tables and all(t["collapsed"] or t["rows"] <= 41 for t in parser.tables)
    assert "1666.19" not in page and "1,666" in page


def test_mechanisms_render_when_present_and_are_absent_otherwise(page, tmp_path):
    assert "id='mechanisms'" in page and "fig-mech-onsets-step" in page and "fig-mech-drop-0" in page
    assert "load-bearing (intervention)" in page
    without = build_report(make_study(tmp_path / "plain", mechanisms=False)).read_text()
    assert "id='mechanisms'" not in without and "mechanism" not in without.split("<nav>")[0]


def test_plotly_is_inlined_once_and_figures_have_descriptions(page):
    assert page.count("<script src") == 0 and page.count("<link") == 0
    assert len(re.findall(r"\* plotly\.js v\d", page)) == 1
    plots = re.findall(r"<div class='plot' id='([^']+)' role='img' aria-label='([^']*)'", page)
    assert len(plots) > 10 and all(len(alt) > 40 for _, alt in plots)
    assert len({p for p, _ in plots}) == len(plots)


def _spec(page: str, fid: str) -> dict:
    return json.loads(re.search(rf"<script type='application/json' id='{fid}-spec'>(.*?)</script>", page, re.S).group(1))


def test_onset_band_only_on_emergent_curves_and_fit_only_where_it_explains(page):
    def kinds(fid):
        data = _spec(page, fid)["data"]
        return ({t["name"].split(":")[0] for t in data if t.get("hoveron") == "fills"},
                {t["name"] for t in data if t.get("name", "").startswith("fit (")})

    bands, fits = kinds("fig-cap-a-copy-exact-match-params")
    assert bands == {"emergent onset"} and fits == {"fit (power_law)"}  # R² 0.95 ≥ 0.9: drawn
    bands, fits = kinds("fig-cap-a-copy-exact-match-step")
    assert bands == {"emergent onset (R2)", "emergent onset (R3)"} and fits == set()  # R1 is not learned: no band
    assert kinds("fig-cap-a-copy-target-logprob-params") == (set(), {"fit (power_law)"})  # smooth: its fit, no band
    assert kinds("fig-cap-b-sum-exact-match-step") == (set(), set())
    assert kinds("fig-cap-b-sum-exact-match-params") == (set(), set())  # R² 0.5: the fit explains nothing, not drawn


def test_hover_names_rung_seed_step_and_value(page):
    data = _spec(page, "fig-cap-a-copy-exact-match-step")["data"]
    means = [t for t in data if t.get("mode") == "lines+markers"]
    assert [t["name"] for t in means] == ["R1 (1.0k)", "R2 (29k)", "R3 (1.2M)"]
    assert means[2]["hovertemplate"].startswith("R3 (1.2M params) · mean of 2 seeds · step %{customdata[0]:,}")
    assert "exact match = %{y:.3~g} ± %{customdata[1]:.2~g}" in means[2]["hovertemplate"]
    assert [row[0] for row in means[2]["customdata"]] == STEPS
    seeds = [t for t in data if t.get("legendgroup") == "seed 1"]
    assert seeds and all(t["visible"] == "legendonly" for t in seeds)  # a seed's lines toggle from the legend

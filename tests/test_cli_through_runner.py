"""Stage commands go through the study runner: `evaluate DIR` then `explain DIR` explains the new rows,
`explain DIR` follows the spec's options, and data goes to stdout (`emergelab worlds | grep modular`)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import yaml

from emergelab.measurements import SORT_KEY
from tests.conftest import run_cli


def _curves(study, rung: str) -> list[dict]:
    expl = json.loads((study / "explanations.json").read_text())
    return [c for c in expl["curves"] if c.get("rung") == rung]


def test_evaluate_then_explain_explains_the_new_rows(smoke_copy):
    ref = pd.read_parquet(smoke_copy / "measurements.parquet").sort_values(SORT_KEY).reset_index(drop=True)
    assert any(c["task"] != "heldout" for c in _curves(smoke_copy, "L1-d8"))
    shutil.rmtree(smoke_copy / "parts" / "eval" / "L1-d8")
    res = run_cli("explain", str(smoke_copy))
    assert res.returncode == 0, res.stderr
    table = pd.read_parquet(smoke_copy / "measurements.parquet")
    assert not ((table.source == "eval") & (table.rung == "L1-d8")).any()  # the table was rebuilt from the parts
    assert not [c for c in _curves(smoke_copy, "L1-d8") if c["task"] in set(ref[ref.source == "eval"].task)]

    res = run_cli("evaluate", str(smoke_copy))
    assert res.returncode == 0, res.stderr
    assert "evaluate: 8 unit(s) done" in res.stderr
    res = run_cli("explain", str(smoke_copy))
    assert res.returncode == 0, res.stderr
    assert "verdict" in res.stdout.lower()  # the verdict table is data: stdout
    again = pd.read_parquet(smoke_copy / "measurements.parquet").sort_values(SORT_KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(again, ref)  # the same numbers, bit for bit
    assert any(c["task"] != "heldout" for c in _curves(smoke_copy, "L1-d8"))


def test_explain_follows_the_spec_s_options_and_refuses_flags_without_out(smoke_copy):
    spec = yaml.safe_load((smoke_copy / "study.yaml").read_text())
    spec["explain"]["threshold"] = 0.25
    (smoke_copy / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    res = run_cli("explain", str(smoke_copy))
    assert res.returncode == 0, res.stderr
    assert json.loads((smoke_copy / "explanations.json").read_text())["options"]["threshold"] == 0.25
    res = run_cli("explain", str(smoke_copy), "--threshold", "0.3")
    assert res.returncode == 2 and "--out" in res.stderr
    res = run_cli("explain", str(smoke_copy), "--threshold", "0.3", "--out", str(smoke_copy / "other.json"))
    assert res.returncode == 0, res.stderr
    assert json.loads((smoke_copy / "other.json").read_text())["options"]["threshold"] == 0.3
    assert json.loads((smoke_copy / "explanations.json").read_text())["options"]["threshold"] == 0.25


def test_explain_on_a_bare_table_works_as_before(smoke_study, tmp_path):
    shutil.copy(smoke_study / "measurements.parquet", tmp_path / "measurements.parquet")
    res = run_cli("explain", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "explanations.json").exists() and not (tmp_path / "study.yaml").exists()


def test_worlds_list_is_data_on_stdout_so_grep_finds_it():
    pipe = subprocess.run(f"{sys.executable} -m emergelab worlds | grep modular", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert pipe.returncode == 0, pipe.stderr
    lines = pipe.stdout.splitlines()
    assert any(line.startswith("modular\t") and "mod p" in line for line in lines), pipe.stdout
    assert all("modular" in line for line in lines)  # one world per line, nothing else on stdout


def test_a_long_error_stays_one_line_in_a_narrow_terminal(tmp_path):
    res = subprocess.run([sys.executable, "-m", "emergelab", "study", "--preset", "smoke", "--set", "train.stepz=3",
                          "--out", str(tmp_path / "s")], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "COLUMNS": "20"})
    assert res.returncode == 2
    assert [line for line in res.stderr.splitlines() if line.strip()] == [res.stderr.strip()]

"""The tests' fork server (tests/cli_server.py) runs the CLI as `python -m emergelab` does: the same exit
status, stdout and stderr as a plain subprocess, transformers' warnings shown or not as there (-v)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_server import CliServer
from tests.conftest import run_cli

RUNS = [["evaluate", "--model", "{A}/corrupt", "--task", "{A}/ok.yaml", "--out", "{T}/e"],
        ["-v", "activations", "--model", "{A}/bert", "--data", "{A}/ok.csv", "--layers", "99", "--out", "{T}/a.safetensors"]]


@pytest.mark.parametrize("argv", RUNS, ids=["quiet", "verbose"])
def test_a_forked_run_is_a_subprocess_run(argv, assets: Path, tmp_path: Path):
    runs = []
    for how in ("fork", "subprocess"):
        (tmp_path / how).mkdir()
        args = [a.replace("{A}", str(assets)).replace("{T}", str(tmp_path / how)) for a in argv]
        if how == "fork":
            runs.append(run_cli(*args))
            assert CliServer._instance is not None and CliServer.get({**os.environ, "OMP_NUM_THREADS": "1"})
        else:
            runs.append(subprocess.run([sys.executable, "-m", "emergelab", *args], capture_output=True, text=True,
                                       env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120))
    # lines sorted: a load report's rows come in set order, which differs from process to process (hash seed)
    norm = lambda r, how: (r.returncode, r.stdout.replace(str(tmp_path / how), "T"), sorted(  # noqa: E731
        re.sub(r"[0-9.]+ [GMk]B", "N", r.stderr.replace(str(tmp_path / how), "T")).splitlines()))
    assert norm(runs[0], "fork") == norm(runs[1], "subprocess")
    assert runs[0].returncode == 2 and runs[0].stderr.count("error:") == 1

"""The tests' fork server (tests/cli_server.py) runs the CLI as `python -m emergelab` does: the same exit
status, stdout and stderr as a plain subprocess (transformers' warnings silenced as there)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_server import CliServer
from tests.conftest import run_cli

pytestmark = pytest.mark.skipif(os.environ.get("EMERGELAB_TEST_FORK", "1") == "0", reason="EMERGELAB_TEST_FORK=0: no fork server")

#: loads a model (transformers' load report and warnings: shown by a plain run only with -v), then refuses
RUN = ["evaluate", "--model", "{A}/corrupt", "--task", "{A}/ok.yaml", "--out", "{T}/e"]


def test_a_forked_run_is_a_subprocess_run(assets: Path, tmp_path: Path):
    runs = []
    for how in ("fork", "subprocess"):
        (tmp_path / how).mkdir()
        args = [a.replace("{A}", str(assets)).replace("{T}", str(tmp_path / how)) for a in RUN]
        if how == "fork":
            runs.append(run_cli(*args))
            assert CliServer._instance is not None and CliServer._instance.proc.poll() is None  # it went through the server
        else:
            runs.append(subprocess.run([sys.executable, "-m", "emergelab", *args], capture_output=True, text=True,
                                       env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120))
    # lines sorted: a load report's rows come in set order, which differs from process to process (hash seed)
    norm = lambda r, how: (r.returncode, r.stdout.replace(str(tmp_path / how), "T"), sorted(  # noqa: E731
        re.sub(r"[0-9.]+ [GMk]B", "N", r.stderr.replace(str(tmp_path / how), "T")).splitlines()))
    assert norm(runs[0], "fork") == norm(runs[1], "subprocess")
    assert runs[0].returncode == 2 and runs[0].stderr.count("error:") == 1


def test_a_forked_run_past_its_timeout_is_killed_as_subprocess_run_does(tmp_path: Path):
    with pytest.raises(subprocess.TimeoutExpired):
        run_cli("study", "--preset", "smoke", "--out", str(tmp_path / "s"), timeout=1)
    assert not (tmp_path / "s" / "measurements.parquet").exists()
    res = run_cli("worlds")  # the server goes on
    assert res.returncode == 0 and "modular" in res.stdout

"""Shared fixtures: one smoke study per test session (the expensive part), CPU-only, 1 thread."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_server import CliServer

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# tests never reach the Hub: external suites load from caches the tests build (HF_HUB_CACHE per test)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# the preflight's machine calibration: one cache for the whole session (and its subprocesses), not ~/.cache
os.environ.setdefault("EMERGELAB_CACHE", os.path.join(os.environ.get("TMPDIR", "/tmp"), f"emergelab-test-cache-{os.getuid()}"))


def run_cli(*args: str, cwd: str | Path | None = None, timeout: float = 300, fork: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m emergelab ARGS`` and capture its output: a child of the session's fork server
    (tests/cli_server.py: torch and transformers imported once), or a plain subprocess with ``fork=False``,
    with variables of its own (``env``) that change the session's environment, or with EMERGELAB_TEST_FORK=0."""
    session = {**os.environ, "OMP_NUM_THREADS": "1"}
    mine = {**session, **(env or {})}
    if fork and mine == session and os.environ.get("EMERGELAB_TEST_FORK", "1") != "0":
        return CliServer.get(session).run(session, list(args), cwd, timeout)
    return subprocess.run([sys.executable, "-m", "emergelab", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=mine)


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> Path:
    """A finished smoke study (run once per test session); tests must not modify it — copy it."""
    out = tmp_path_factory.mktemp("smoke") / "study"
    # a plain process: forked runs share the server's string-hash seed (set order), this reference does not
    res = run_cli("study", "--preset", "smoke", "--out", str(out), fork=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.fixture
def smoke_copy(smoke_study, tmp_path) -> Path:
    dst = tmp_path / "study"
    shutil.copytree(smoke_study, dst)
    return dst


def drop_rungs(study: Path, rungs: tuple[str, ...]) -> Path:
    """Take a copy of a finished study back to where ``rungs`` were never started: their checkpoints and
    every part made from them go, with the prepared data and what is built from all the parts (the
    table, the explanations, the report). A study over the copy redoes that much, every stage of it:
    the kill-and-resume and executor tests need no study of their own from scratch."""
    for rung in rungs:
        assert (study / "runs" / rung).is_dir(), rung
        shutil.rmtree(study / "runs" / rung)
        for part in (study / "parts").glob(f"*/{rung}"):
            shutil.rmtree(part)
    for name in ("data", "report"):
        shutil.rmtree(study / name)
    for name in ("measurements.parquet", "explanations.json"):
        (study / name).unlink()
    return study

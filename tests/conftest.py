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


def run_cli(*args: str, cwd: str | Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m emergelab ARGS`` and capture its output: a child of the session's fork server
    (tests/cli_server.py: torch and transformers imported once), or a plain subprocess where the
    environment is not the server's (or EMERGELAB_TEST_FORK=0)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if os.environ.get("EMERGELAB_TEST_FORK", "1") != "0":
        server = CliServer.get(env)
        if server is not None:
            return server.run(env, list(args), cwd, timeout)
    return subprocess.run([sys.executable, "-m", "emergelab", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> Path:
    """A finished smoke study (run once per test session); tests must not modify it — copy it."""
    out = tmp_path_factory.mktemp("smoke") / "study"
    res = run_cli("study", "--preset", "smoke", "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.fixture
def smoke_copy(smoke_study, tmp_path) -> Path:
    dst = tmp_path / "study"
    shutil.copytree(smoke_study, dst)
    return dst

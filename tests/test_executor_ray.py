"""`executor: ray` on a real two-node Ray cluster on 127.0.0.1 (a head and one worker node, 1 CPU each):
the smoke study gives the local executor's checkpoints (sha256) and measurements, and a driver killed
mid-study leaves no task writing and resumes to the same result. Both start from a copy of the session's
local smoke study taken back to before two of its rungs (``drop_rungs``): what Ray computes is those
rungs' share of every stage, compared with the local executor's."""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import drop_rungs
from tests.test_faults import _shas, _table

ray = pytest.importorskip("ray", reason="the ray extra is not installed (`pip install -e .[test,ray]`)")

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: pids of the test cluster's `ray start` processes (its raylets, and their workers, descend from them)
ROOTS: set[int] = set()


def _descends_from_cluster(pid: int) -> bool:
    for _ in range(16):
        if pid in ROOTS:
            return True
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the parent's pid (the field after the state)
        if pid <= 1:
            return False
    return False


def _task_pids(name: str = "ray::emergelab-") -> list[int]:
    """The test cluster's processes running one of our Ray tasks (Ray titles a worker ``ray::<task name>``)."""
    pids = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and (p / "cmdline").read_bytes().startswith(name.encode()) and _descends_from_cluster(int(p.name)):
                pids.append(int(p.name))
        except OSError:
            continue
    return pids


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`ray start --head` and `ray start --address` as blocking processes (each ends the Ray processes it
    started when terminated): 2 CPUs over two nodes. Yields the address for RAY_ADDRESS."""
    port = _free_port()
    temp = Path(f"/tmp/ray-el-{os.getpid()}")  # short: Ray's socket paths must stay under 108 bytes
    env = _ray_env(None)
    common = ["--num-cpus", "1", "--num-gpus", "0", "--node-ip-address", "127.0.0.1", "--object-store-memory",
              str(200 * 2**20), "--block", "--disable-usage-stats"]
    log = tmp_path_factory.mktemp("ray-logs")
    procs = [subprocess.Popen([RAY, "start", "--head", "--port", str(port), "--include-dashboard", "false",
                               "--temp-dir", str(temp), *common], env=env, start_new_session=True,
                              stdout=open(log / "head.log", "w"), stderr=subprocess.STDOUT)]
    address = f"127.0.0.1:{port}"
    try:
        _wait_for_nodes(address, 1, procs)
        procs.append(subprocess.Popen([RAY, "start", "--address", address, *common], env=env, start_new_session=True,
                                      stdout=open(log / "worker.log", "w"), stderr=subprocess.STDOUT))
        _wait_for_nodes(address, 2, procs)
        ROOTS.update(p.pid for p in procs)
        yield address
    finally:
        for p in reversed(procs):  # SIGTERM: `ray start --block` stops the processes it started ...
            os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:  # ... but may drain for 30 s: the rest of its group goes at once
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


#: the test cluster's token (Ray enables token authentication by default; every process here gets it)
TOKEN = secrets.token_hex(32)


def _wait_for_nodes(address: str, n: int, procs: list, timeout: float = 90) -> None:
    probe = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False); "
             "print(sum(x['Alive'] for x in ray.nodes()), int(ray.cluster_resources().get('CPU', 0)))")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), "a `ray start` process exited"
        res = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True, timeout=60,
                             env=_ray_env(None))
        if res.returncode == 0 and res.stdout.split() == [str(n), str(n)]:
            return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster did not reach {n} nodes: {res.stdout} {res.stderr[-1000:]}")


def _ray_env(address: str | None) -> dict:
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN, "RAY_USAGE_STATS_ENABLED": "0",
           "OMP_NUM_THREADS": "1"}
    if address:
        env["RAY_ADDRESS"] = address
    return env


#: the rungs the Ray tests take a copy of the local smoke study back from: two groups for the two nodes in
#: every stage (finetune included: L2-d64 is one of its rungs), with the prepared data and the table
RAY_RUNGS = ("L1-d8", "L2-d64")


def test_smoke_study_on_two_ray_nodes_equals_the_local_one(cluster, smoke_copy, smoke_study):
    out = drop_rungs(smoke_copy, RAY_RUNGS)
    kept = {p: p.stat().st_mtime_ns for p in (out / "parts").rglob("*.parquet")}
    res = subprocess.run([sys.executable, "-m", "emergelab", "study", "--preset", "smoke", "--executor", "ray",
                          "--out", str(out)], capture_output=True, text=True, env=_ray_env(cluster), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "each Ray task decides on its own" in res.stderr  # the precision line says where it was decided
    assert "train      L1-d8" in res.stderr.replace("━", "")  # progress came back from the tasks
    assert _shas(out) == _shas(smoke_study)
    pd.testing.assert_frame_equal(_table(out), _table(smoke_study))
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # the other rungs' parts were not redone
    assert not _task_pids()


def _new_checkpoints(out: Path) -> int:
    return sum(len(list(out.glob(f"runs/{r}/checkpoints/step-*/checkpoint.json"))) for r in RAY_RUNGS)


def test_killed_ray_driver_leaves_no_task_writing_and_resumes(cluster, smoke_copy, smoke_study):
    out = drop_rungs(smoke_copy, RAY_RUNGS)
    cmd = [sys.executable, "-m", "emergelab", "study", "--preset", "smoke", "--set", "executor=ray", "--out", str(out)]
    driver = subprocess.Popen(cmd, env=_ray_env(cluster), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:  # SIGKILL the driver once training has written its first checkpoints (tasks are running)
        deadline = time.monotonic() + 120
        while _new_checkpoints(out) < 3:
            assert driver.poll() is None and time.monotonic() < deadline, "the study ended before it was killed"
            time.sleep(0.05)
        assert _task_pids(), "no Ray task was running"
    finally:
        driver.kill()
        driver.wait()
    killed, deadline = time.monotonic(), time.monotonic() + 30
    while _task_pids() and time.monotonic() < deadline:  # Ray kills the workers of a job whose driver died
        time.sleep(0.1)
    assert not _task_pids(), "a Ray task outlived its killed driver"
    print(f"tasks gone {time.monotonic() - killed:.1f} s after the driver was killed")
    before = sorted((str(p), p.stat().st_size) for p in out.rglob("*") if p.is_file())
    time.sleep(1.0)
    assert sorted((str(p), p.stat().st_size) for p in out.rglob("*") if p.is_file()) == before  # nothing writes
    assert (out / "runs").exists() and not (out / "measurements.parquet").exists()  # it was killed mid-study
    res = subprocess.run(cmd, capture_output=True, text=True, env=_ray_env(cluster), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _shas(out) == _shas(smoke_study)
    pd.testing.assert_frame_equal(_table(out), _table(smoke_study))


def test_local_ray_instance_when_no_address_is_given(smoke_study, tmp_path):
    """Without RAY_ADDRESS or ray.address the executor starts a Ray instance for the study (and it ends
    with the study): one stage of a copy, whose parts must equal the local ones (one rung's probes: the
    instance's start-up is most of the time)."""
    import shutil

    out = tmp_path / "study"
    shutil.copytree(smoke_study, out)
    for part in (out / "parts" / "probe" / "L2-d64").glob("*.parquet"):
        part.unlink()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    res = subprocess.run([sys.executable, "-m", "emergelab", "probe", str(out), "--executor", "ray"],
                         capture_output=True, text=True, env={**env, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "probe: 8 unit(s) done" in res.stderr
    for part in sorted((smoke_study / "parts" / "probe").rglob("*.parquet")):
        mine = out / part.relative_to(smoke_study)
        pd.testing.assert_frame_equal(pd.read_parquet(mine), pd.read_parquet(part))

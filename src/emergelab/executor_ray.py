"""``RayExecutor``: a stage's groups of units as Ray tasks, on one machine or a cluster sharing the study directory.

The same contract as ``LocalExecutor`` (``map`` a stage's groups, ``close``): each group is one Ray task
that calls ``run_group`` on the machine Ray places it on, so its outputs land in the study directory
exactly as a local worker writes them (atomically; the directory must be on a file system every node
mounts at the same path). The driver keeps the study lock; tasks never take it. Progress calls travel
back through a small actor that the driver drains. Ray is an optional extra, imported when this
executor is chosen (``executor: ray``); see docs/scaling.md.

A killed driver leaves no task writing: every task is owned by the driver, and Ray kills the workers
of a job whose driver is gone (``tests/test_executor_ray.py`` SIGKILLs the driver and checks); a driver
that stops normally (an error, Ctrl-C) cancels its tasks in ``close``. Re-running resumes from disk.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from emergelab.errors import UserError
from emergelab.executor import run_group
from emergelab.spec import StudySpec

#: seconds between the driver's looks at finished tasks and progress
POLL_S = 0.1


def import_ray():
    """The ``ray`` module, or the one-line error that names the extra."""
    try:
        import ray
    except ImportError:
        raise UserError("executor ray needs Ray, which is not installed: `pip install emergelab[ray]` "
                        "(or run with --executor local)") from None
    return ray


class ProgressBox:
    """A Ray actor holding the tasks' progress calls until the driver drains them (in the order sent)."""

    def __init__(self):
        self.calls: list[tuple] = []

    def push(self, args: tuple) -> None:
        self.calls.append(args)

    def drain(self) -> list[tuple]:
        out, self.calls = self.calls, []
        return out


def run_group_task(stage_name: str, spec: StudySpec, root: str, units: list, box) -> int:
    """A Ray task: one group of a stage's units, its progress sent to the driver's box (fire and forget)."""
    progress = None if box is None else (lambda *args: box.push.remote(args))
    return run_group(stage_name, spec, root, units, progress)


def ray_address(spec: StudySpec) -> str | None:
    """The cluster to connect to: ``RAY_ADDRESS``, else the spec's ``ray.address``; None starts a local instance."""
    return os.environ.get("RAY_ADDRESS") or (spec.ray.address if spec.ray is not None else None)


class RayExecutor:
    """Groups run as Ray tasks with their resources: ``train.threads`` CPUs each, and a GPU for the train
    stage when ``train.device`` is cuda (or auto on a cluster with GPUs). Connects on first use."""

    def __init__(self, spec: StudySpec):
        self._ray = import_ray()  # fails before anything is written, not at the first stage
        self.address = ray_address(spec)
        self._connected = self._owner = False
        self._box = None
        self._pending: list = []

    def _connect(self) -> None:
        ray = self._ray
        if self._connected:
            return
        if not ray.is_initialized():
            self._owner = True
            kwargs = dict(logging_level=logging.ERROR, log_to_driver=False, configure_logging=True)
            try:
                if self.address:
                    ray.init(address=self.address, **kwargs)
                else:  # a new local instance for this study ("local": never a cluster found in /tmp/ray), whose
                    # processes end with this driver (Ray's fate sharing)
                    ray.init(address="local", include_dashboard=False, **kwargs)
            except ConnectionError as exc:
                raise UserError(f"cannot connect to the Ray cluster at {self.address}: {exc}; start it with "
                                "`ray start --head` (see docs/scaling.md), give this machine the cluster's token "
                                "(RAY_AUTH_TOKEN or ~/.ray/auth_token), or unset RAY_ADDRESS / ray.address") from None
        self._connected = True

    def _resources(self, stage_name: str, spec: StudySpec) -> dict:
        ray = self._ray
        cluster = ray.cluster_resources()
        device = spec.train.device
        gpus = 1 if stage_name == "train" and (device == "cuda" or (device == "auto" and cluster.get("GPU", 0) >= 1)) else 0
        cpus = spec.train.threads
        if cluster.get("CPU", 0) < cpus:
            raise UserError(f"train.threads {cpus}: each Ray task asks for {cpus} CPUs but the cluster has "
                            f"{cluster.get('CPU', 0):g}; lower train.threads or add nodes")
        if gpus and cluster.get("GPU", 0) < 1:
            raise UserError("train.device is cuda but the Ray cluster has no GPU; start nodes with GPUs "
                            "(`ray start --num-gpus N`) or set train.device to auto or cpu")
        return {"num_cpus": cpus, "num_gpus": gpus}

    def map(self, stage_name: str, spec: StudySpec, root: Path, groups: list[list], progress=None) -> list[int]:
        ray = self._ray
        self._connect()
        if self._box is None:
            self._box = ray.remote(num_cpus=0)(ProgressBox).remote()
        task = ray.remote(run_group_task).options(name=f"emergelab-{stage_name}", max_retries=1,
                                                  **self._resources(stage_name, spec))
        refs = [task.remote(stage_name, spec, str(root), g, self._box) for g in groups]
        self._pending = list(refs)
        while self._pending:
            done, self._pending = ray.wait(self._pending, num_returns=len(self._pending), timeout=POLL_S)
            for ref in done:
                self._get(ref)  # a failed group fails the stage at once; close() cancels the rest
            self._drain(progress)
        self._drain(progress)
        return [self._get(r) for r in refs]

    def _get(self, ref):
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the task's own exception (a UserError stays one line)
            cause = getattr(exc, "cause", None)
            raise (cause if isinstance(cause, BaseException) else exc) from None

    def _drain(self, progress) -> None:
        calls = self._ray.get(self._box.drain.remote())
        if progress is not None:
            for args in calls:
                progress(*args)

    def close(self) -> None:
        ray = self._ray
        if not self._connected:
            return
        for ref in self._pending:  # an error or Ctrl-C on the driver: no task keeps writing after it
            ray.cancel(ref, force=True)
        self._pending = []
        if self._box is not None:
            ray.kill(self._box)
            self._box = None
        if self._owner:
            ray.shutdown()
        self._connected = self._owner = False

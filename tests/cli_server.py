"""A fork server for the tests' `python -m emergelab` runs (``tests.conftest.run_cli``).

Most of a CLI run's time in the tests is importing torch and transformers (1-4 s, where the work itself
often takes a fraction of a second: a bad-input case, an incremental re-run). The server is a separate
Python process that imports them once, runs no torch operation, and forks one child per run: the child
is a fresh process (its own pid, cwd, argv, stdin from /dev/null, stdout and stderr to files, exit
status) that runs ``emergelab`` exactly as ``python -m emergelab`` does (``runpy``), only with those
modules already imported. Libraries read some variables once, when imported: a run with variables of its
own (``run_cli(env=...)``) is a plain subprocess, and a change of the session's environment starts a new
server. What a forked run does not
have of its own is the string-hash seed (Python draws it at start-up): every forked run iterates sets in
the server's order, so the session's reference smoke study is a plain subprocess (``fork=False``).
tests/bad_inputs/test_cli_server.py checks that a forked run prints what a plain one prints.

Protocol (one run at a time): a JSON line on the server's stdin; the server answers the child's pid,
then, when the child has exited, its status (both as JSON lines on its stdout).
"""
from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# what `python -m emergelab` imports on the way to its work, besides emergelab's own modules (all but Ray's)
PRELOAD = ("torch", "transformers", "transformers.models.gpt2.modeling_gpt2", "transformers.models.bert.modeling_bert",
           "peft", "datasets")


def _preload() -> None:
    import importlib
    import pkgutil

    import emergelab

    for name in PRELOAD:
        importlib.import_module(name)
    for mod in pkgutil.walk_packages(emergelab.__path__, "emergelab."):
        if not mod.name.endswith(("__main__", "executor_ray")):
            importlib.import_module(mod.name)


def _transformers_logging(args: list[str]) -> None:
    """transformers sets its loggers' level once, when first imported, from TRANSFORMERS_VERBOSITY, which
    the CLI's root callback defaults to "error" unless -v is given: set again as this run would."""
    from transformers.utils import logging as tl

    was = os.environ.get("TRANSFORMERS_VERBOSITY")
    verbose = any(a == "--verbose" or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in args)
    if was is None and not verbose:
        os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    tl._reset_library_root_logger()
    tl._configure_library_root_logger()
    if was is None:
        os.environ.pop("TRANSFORMERS_VERBOSITY", None)


def _child(req: dict) -> None:
    """In the forked child: become the CLI run the request describes, and exit with its status."""
    code = 1
    try:
        os.setpgid(0, 0)  # its own process group: a timeout kills it and whatever it started
        _die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd)
            os.close(f)
        os.closerange(3, 256)  # the protocol pipes are the server's, not the run's
        os.environ.clear()
        os.environ.update(req["env"])  # the server's, but for the variables that nothing reads on import
        sys.stdin = open(os.devnull)  # noqa: SIM115  (not the protocol's buffered reader)
        if req["cwd"]:
            os.chdir(req["cwd"])
        sys.path[0] = os.getcwd()  # as `python -m` puts the working directory first
        _transformers_logging(req["args"])
        import runpy

        sys.argv = ["-m", *req["args"]]  # runpy sets argv[0] to the module's path, as `python -m` does
        try:
            runpy.run_module("emergelab", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:  # sys.exit("message"): printed, status 1 (as the interpreter does)
                print(exc.code, file=sys.stderr)
        except BaseException:  # noqa: BLE001  (an uncaught exception: its traceback, status 1)
            import traceback

            traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def _die_with_parent() -> None:
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _status(status: int) -> int:
    """A child's wait status as subprocess reports it: the exit code, or minus the signal."""
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def serve() -> None:
    _die_with_parent()  # never outlive the test session (nor its runs the server)
    _preload()

    def answer(msg: dict) -> None:
        os.write(1, json.dumps(msg).encode() + b"\n")  # unbuffered: nothing left for a child to inherit

    answer({"ready": True})
    for line in sys.stdin.buffer:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(req)
        answer({"pid": pid})
        _, status = os.waitpid(pid, 0)
        answer({"returncode": _status(status)})


# ------------------------------------------------------------------ the tests' side

#: variables that change from test to test and that no library reads when imported
PER_RUN = ("PYTEST_CURRENT_TEST",)


def _same(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k not in PER_RUN} == {k: v for k, v in b.items() if k not in PER_RUN}


class CliServer:
    """The session's server (started on first use, for one environment)."""

    _instance: CliServer | None = None

    def __init__(self, env: dict):
        self.env, self._buf = env, b""
        self.dir = tempfile.mkdtemp(prefix="emergelab-cli-")
        root = Path(__file__).resolve().parents[1]  # the checkout: `tests` importable for -c
        self.proc = subprocess.Popen([sys.executable, "-c", "from tests.cli_server import serve; serve()"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=root, env=env)
        self._answer(None)  # ready: its imports are done

    @classmethod
    def get(cls, env: dict) -> CliServer:
        """The server for ``env``: the running one, or a new one where it died or the session's environment
        has changed since it started (a test that set a variable for good: transformers' verbosity, say)."""
        if cls._instance is not None and (cls._instance.proc.poll() is not None or not _same(cls._instance.env, env)):
            cls._instance.close()
            cls._instance = None
        if cls._instance is None:
            cls._instance = cls(env)
            atexit.register(cls._instance.close)
        return cls._instance

    def _answer(self, timeout: float | None) -> dict | None:
        """The server's next answer, or None after ``timeout`` seconds (read off the pipe's descriptor:
        no buffer where an answer could wait unseen by ``select``)."""
        fd = self.proc.stdout.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buf:
            if deadline is not None and not select.select([fd], [], [], max(deadline - time.monotonic(), 0))[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"the CLI fork server exited (status {self.proc.wait()})")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def run(self, env: dict, args: list[str], cwd, timeout: float) -> subprocess.CompletedProcess:
        out, err = (os.path.join(self.dir, n) for n in ("stdout", "stderr"))
        req = {"env": env, "args": args, "cwd": str(cwd) if cwd is not None else None, "stdout": out, "stderr": err}
        self.proc.stdin.write(json.dumps(req).encode() + b"\n")
        self.proc.stdin.flush()
        pid = self._answer(None)["pid"]
        done = self._answer(timeout)
        if done is None:  # as subprocess.run: kill it, then raise
            os.killpg(pid, signal.SIGKILL)
            self._answer(None)
        result = [Path(p).read_text(errors="replace") for p in (out, err)]
        cmd = [sys.executable, "-m", "emergelab", *args]
        if done is None:
            raise subprocess.TimeoutExpired(cmd, timeout, output=result[0], stderr=result[1])
        return subprocess.CompletedProcess(cmd, done["returncode"], *result)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":
    serve()

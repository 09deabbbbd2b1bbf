"""Atomic writes and the study lock."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from emergelab.errors import UserError
from emergelab.io import StudyLock, atomic_dir, atomic_write_bytes, atomic_write_text, clean_stale_temps


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "old")
    atomic_write_text(p, "new")
    assert p.read_text() == "new"
    assert [f.name for f in tmp_path.iterdir()] == ["a.txt"]


def test_failed_write_leaves_old_content_and_no_temp(tmp_path, monkeypatch):
    p = tmp_path / "a.bin"
    atomic_write_bytes(p, b"good")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(UserError, match="no space left"):
        atomic_write_bytes(p, b"bad")
    assert p.read_bytes() == b"good"
    assert [f.name for f in tmp_path.iterdir()] == ["a.bin"]


def test_atomic_dir_appears_only_when_complete(tmp_path):
    target = tmp_path / "ckpt"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "x").write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("whole")
    assert (target / "x").read_text() == "whole"


def test_stale_temps_are_cleaned(tmp_path):
    (tmp_path / ".a.json.123.tmp").write_text("torn")
    (tmp_path / ".step-000001.abc.tmp").mkdir()
    assert clean_stale_temps(tmp_path) == 2
    assert list(tmp_path.iterdir()) == []


def test_lock_refuses_second_holder_and_is_released_by_a_dead_process(tmp_path):
    code = f"import time; from emergelab.io import StudyLock; l = StudyLock({str(tmp_path)!r}).__enter__(); print('held', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match="another emergelab process"):
            StudyLock(tmp_path).__enter__()
    finally:
        proc.kill()
        proc.wait()
    with StudyLock(tmp_path):  # the kernel released the dead holder's lock
        pass


def test_unwritable_directory_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user that ignores permissions (root)")
        with pytest.raises(UserError, match="cannot write"):
            atomic_write_text(ro / "x.txt", "x")
    finally:
        ro.chmod(0o700)

"""Export checkpoints as a Hugging Face Hub cache: ``models--<org>--<name>/{refs,snapshots,blobs}``.

The layout ``huggingface_hub`` writes when it downloads (``file_download.py``): ``blobs/<sha256>`` holds
each file once, ``snapshots/<commit>/<file>`` links to its blob, and ``refs/<revision>`` holds the commit
a branch or tag points at. A suite exported this way loads with ``HF_HUB_OFFLINE=1`` by id and revision
(``stepN``) exactly as Pythia's revisions do from a warm cache — the offline stand-in for the Hub.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from emergelab.io import sha256_file

#: what a snapshot holds: an emergelab checkpoint's files (its manifest too: the step is recorded there)
_SKIP = {"training_args.bin"}


def repo_dir(cache: Path, repo_id: str) -> Path:
    """``models--org--name`` (``huggingface_hub.file_download.repo_folder_name``)."""
    return Path(cache) / ("models--" + repo_id.replace("/", "--"))


def commit_of(files: dict[str, str], revision: str) -> str:
    """A deterministic 40-hex commit id for a snapshot (its files' digests and its revision)."""
    h = hashlib.sha1(revision.encode())
    for name in sorted(files):
        h.update(f"{name}:{files[name]}\n".encode())
    return h.hexdigest()


def add_revision(cache: Path, repo_id: str, revision: str, folder: Path, *, main: bool = False) -> str:
    """Add ``folder``'s files to the cache as ``repo_id`` at ``revision`` (and ``main`` if asked); the commit id."""
    repo = repo_dir(cache, repo_id)
    files = {f.name: sha256_file(f) for f in sorted(Path(folder).iterdir()) if f.is_file() and f.name not in _SKIP}
    commit = commit_of(files, revision)
    snap = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for name, digest in files.items():
        blob = repo / "blobs" / digest
        if not blob.exists():
            shutil.copyfile(Path(folder) / name, blob)
        link = snap / name
        if not link.exists():
            os.symlink(os.path.relpath(blob, snap), link)  # relative, as huggingface_hub links them
    (repo / "refs").mkdir(exist_ok=True)
    for ref in [revision] + (["main"] if main else []):
        (repo / "refs" / ref).write_text(commit)  # no newline: huggingface_hub reads the file as is
    return commit


def export_ladder(checkpoints: dict[str, dict[int, Path]], cache: Path, org: str = "emergelab") -> dict[str, list[str]]:
    """Every rung's checkpoints as ``<org>/<rung>`` at revisions ``step<N>`` (``main``: the last); revisions per id."""
    out = {}
    for rung, by_step in checkpoints.items():
        repo_id = f"{org}/{rung}"
        steps = sorted(by_step)
        for step in steps:
            add_revision(cache, repo_id, f"step{step}", by_step[step], main=step == steps[-1])
        out[repo_id] = [f"step{s}" for s in steps]
    return out

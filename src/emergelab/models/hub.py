"""External checkpoints: a Hub id at a revision, or a local directory, as one verified local folder.

Hub models go through ``huggingface_hub.snapshot_download`` only — so ``HF_HOME``, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE`` and the local cache behave as they do for ``from_pretrained`` — and only config,
tokenizer and safetensors files are fetched: pickle weights are never downloaded, let alone loaded.
Every failure (a revision that does not exist, a gated or missing model, an empty glob, no safetensors)
is one line naming the fix.
"""
from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path

from emergelab.errors import UserError
from emergelab.models.local import check_model_dir

#: what a checkpoint needs: config, tokenizer and safetensors weights (never ``*.bin``/``*.pt`` pickles)
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]


@dataclass(frozen=True)
class Source:
    """Where one checkpoint of a ladder entry comes from: a Hub id (``revision`` set or None) or a directory."""

    ref: str
    revision: str | None = None
    local: bool = False

    @property
    def label(self) -> str:
        return self.ref if self.local or self.revision is None else f"{self.ref}@{self.revision}"

    @property
    def name(self) -> str:
        """What a step may be read from: the revision, else the directory's name."""
        return self.revision if self.revision is not None else Path(self.ref).name


def looks_local(ref: str) -> bool:
    """A path (exists, or starts like one) rather than a Hub id ``org/name``."""
    return Path(ref).expanduser().exists() or ref.startswith(("/", "./", "../", "~")) or ref.count("/") > 1


def entry_sources(entry, base: Path | None = None) -> list[Source]:
    """The checkpoints of a ladder entry (``spec.suite.ExternalModel``), in the entry's order."""
    if entry.models is not None:
        pattern = entry.models if base is None or Path(entry.models).expanduser().is_absolute() else str(base / entry.models)
        found = sorted(p for p in glob.glob(str(Path(pattern).expanduser())) if Path(p).is_dir())
        if not found:
            raise UserError(f"ladder entry {entry.name}: models: {entry.models} matches no directory; give a glob of "
                            "checkpoint directories (e.g. ./runs/small/checkpoint-*)")
        return [Source(str(Path(p).resolve()), None, True) for p in found]
    if looks_local(entry.model):
        p = Path(entry.model).expanduser()
        p = p if p.is_absolute() or base is None else base / p
        if entry.revisions is not None:
            raise UserError(f"ladder entry {entry.name}: revisions are Hub revisions, but {entry.model} is a local directory; "
                            "use models: GLOB for a folder of checkpoints")
        return [Source(str(p.resolve()), None, True)]
    return [Source(entry.model, r) for r in entry.revisions or [None]]


def _cached_revisions(repo_id: str) -> list[str]:
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    refs = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model") / "refs"
    return sorted(p.name for p in refs.iterdir()) if refs.is_dir() else []


def hub_error(src: Source, exc: Exception) -> UserError:
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    rev = src.revision or "main"
    if isinstance(exc, GatedRepoError):
        return UserError(f"{src.ref} is gated: accept its licence on huggingface.co and log in (hf auth login), then re-run")
    if isinstance(exc, RevisionNotFoundError):
        return UserError(f"{src.ref} has no revision {rev!r}; list its branches with `hf repo branches {src.ref}` (Pythia: step0 … step143000)")
    if isinstance(exc, RepositoryNotFoundError):
        return UserError(f"model {src.ref} does not exist on the Hub (or is private: log in with hf auth login)")
    if isinstance(exc, HFValidationError):
        return UserError(f"{src.ref!r} is neither a local directory nor a Hub id (org/name)")
    if isinstance(exc, LocalEntryNotFoundError):
        cached = _cached_revisions(src.ref)
        have = f"; cached revisions: {', '.join(cached[:8])}{' …' if len(cached) > 8 else ''}" if cached else ""
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hub cannot be reached"
        return UserError(f"revision {rev!r} of {src.ref} is not in the local cache ({constants.HF_HUB_CACHE}) and {why}{have}")
    return UserError(f"cannot fetch {src.label} ({type(exc).__name__}: {str(exc).splitlines()[0][:150] if str(exc) else ''})")


def fetch(src: Source) -> Path:
    """The local folder of one checkpoint (downloaded into the Hub cache if needed), checked for safetensors."""
    if not src.local:
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(src.ref, revision=src.revision, allow_patterns=HUB_PATTERNS))
        except Exception as exc:  # noqa: BLE001 — huggingface_hub raises many types; the user needs one line
            raise hub_error(src, exc) from None
        if not list(path.glob("*.safetensors")):
            raise UserError(f"{src.label} has no safetensors weights (emergelab never loads pickle .bin files); convert them "
                            "once in a trusted environment, or pick a revision that has model.safetensors")
        return check_model_dir(path)
    return check_model_dir(src.ref)


def recorded_step(path: Path) -> int | None:
    """The step an emergelab ``checkpoint.json`` or a transformers ``trainer_state.json`` records, if any."""
    for name, key in (("checkpoint.json", "step"), ("trainer_state.json", "global_step")):
        f = Path(path) / name
        if f.is_file():
            try:
                value = json.loads(f.read_text(encoding="utf-8")).get(key)
            except (ValueError, OSError):
                continue
            if isinstance(value, int) and value >= 0:
                return value
    return None

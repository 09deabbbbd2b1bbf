"""Accelerate around the training loop: devices, processes, bf16, trackers and the global batch's shards.

``emergelab train`` runs unchanged under ``accelerate launch``: each process takes its contiguous shard
of every micro-batch of the step's global batch, so the global batch and the data order do not depend
on the number of processes (see docs/scaling.md).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

from emergelab.errors import UserError
from emergelab.models.precision import native_bf16

#: tracker name (spec ``train.trackers``) -> the package it needs
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "comet_ml": "comet_ml",
                    "aim": "aim", "clearml": "clearml", "dvclive": "dvclive"}


def launched_processes() -> int:
    """How many processes a launcher (``accelerate launch``, torchrun) started (1 when run directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def check_trackers(names: list[str]) -> None:
    """A requested tracker whose package is missing is a one-line error naming the fix."""
    for name in names:
        if importlib.util.find_spec(TRACKER_PACKAGES[name]) is None:
            raise UserError(f"train.trackers lists {name!r} but the {TRACKER_PACKAGES[name]} package is not installed; "
                            f"`pip install {TRACKER_PACKAGES[name]}` or remove it from train.trackers")


#: accelerate's launcher flags (``--use_fsdp``, ``--use_deepspeed``, ``--use_megatron_lm`` or a config file's
#: ``distributed_type``) -> the kind of training they ask for
LAUNCHER_FLAGS = {"ACCELERATE_USE_FSDP": "FSDP", "ACCELERATE_USE_DEEPSPEED": "DEEPSPEED",
                  "ACCELERATE_USE_MEGATRON_LM": "MEGATRON_LM"}
#: kinds that shard the weights or optimizer state (or run on XLA): not supported
UNSUPPORTED = ("FSDP", "DEEPSPEED", "MEGATRON_LM", "XLA")


def requested_kind() -> str | None:
    """The sharded kind of training the launcher asked for, if any.

    Read from the launcher's flags, not only from the Accelerator: on CPU processes accelerate ignores
    ``--use_fsdp`` and ``--use_deepspeed`` and silently wraps the model in DDP instead (its FSDP and
    DeepSpeed set-up only runs on accelerator devices), so the flags are the only trace of the request.
    """
    return next((kind for var, kind in LAUNCHER_FLAGS.items() if os.environ.get(var, "false").lower() == "true"), None)


def refuse(kind: str) -> None:
    # checkpoints and the exact-resume state are written from whole (unsharded) weights and optimizer state
    raise UserError(f"emergelab train supports data parallelism (DDP: `accelerate launch --multi_gpu`), not {kind}; "
                    "see docs/scaling.md")


def check_device(device: str) -> None:
    """``train.device: cuda`` on a machine (or a Ray task) that sees no CUDA device is a one-line error."""
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device is cuda but no CUDA device is visible here (torch.cuda.is_available() is False; "
                        f"torch {torch.__version__}); install a CUDA build of torch, or set train.device to auto or cpu")


def make_accelerator(trackers: list[str], logs: Path, device: str = "auto"):
    """An Accelerator on the launched device(s) (``device``: auto = CUDA when visible; cpu; cuda); trackers
    other than TensorBoard (which the loop writes itself, so that a resumed run can purge the steps it
    redoes) go through accelerate."""
    from accelerate import Accelerator

    check_trackers(trackers)
    check_device(device)
    if requested := requested_kind():
        refuse(requested)
    others = [t for t in trackers if t != "tensorboard"]
    # launched processes without a GPU: accelerate uses gloo on the CPU only when asked to (``cpu=True``)
    cpu = device == "cpu" or (launched_processes() > 1 and not torch.cuda.is_available())
    acc = Accelerator(cpu=cpu, log_with=others or None, project_dir=str(logs))
    kind = str(acc.distributed_type).split(".")[-1]
    if kind in UNSUPPORTED:
        refuse(kind)
    return acc


def bf16_choice(setting: bool | str, device: torch.device) -> tuple[bool, str]:
    """Whether to train under bf16 autocast, and why (the reason is printed and kept in the manifest).
    ``auto``: on where the device computes bf16 natively (``models.precision``), fp32 elsewhere."""
    if setting != "auto":
        return bool(setting), f"train.bf16 is {str(bool(setting)).lower()}"
    ok, why = native_bf16(device)
    return ok, f"train.bf16 auto: {why}"


def training_precision(setting: bool | str, device: str = "auto") -> str:
    """One line for the preflight: the precision this machine would train in, and why."""
    on_cuda = device != "cpu" and torch.cuda.is_available()
    bf16, why = bf16_choice(setting, torch.device("cuda" if on_cuda else "cpu"))
    return f"{'bf16 autocast' if bf16 else 'fp32'} on {'cuda' if on_cuda else 'cpu'} ({why})"


def use_bf16(setting: bool | str, device: torch.device) -> bool:
    """Whether bf16 autocast is on (see ``bf16_choice``)."""
    return bf16_choice(setting, device)[0]


def shard(n_rows: int, n_processes: int, index: int) -> slice:
    """This process's contiguous part of ``n_rows`` rows (the rows must divide evenly)."""
    per = n_rows // n_processes
    return slice(index * per, (index + 1) * per)


def check_divisible(batch_size: int, n_processes: int) -> None:
    if batch_size % n_processes:
        raise UserError(f"train.batch_size {batch_size} is not divisible by the {n_processes} processes launched; "
                        f"choose a batch size that is a multiple of {n_processes}")


def take_rows(batch: dict[str, torch.Tensor], rows: slice, n_rows: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The per-row tensors of ``batch`` restricted to ``rows``, on ``device``; counts (0-d) stay whole, on the CPU."""
    return {k: v[rows].to(device, non_blocking=True) if v.dim() and v.shape[0] == n_rows else v
            for k, v in batch.items()}

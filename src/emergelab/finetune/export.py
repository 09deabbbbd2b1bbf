"""Export a fine-tuned run as a plain ``transformers`` model directory (peft adapters merged in)."""
from __future__ import annotations

from pathlib import Path

from emergelab.errors import UserError
from emergelab.finetune.methods import METHODS
from emergelab.finetune.model_dir import quiet_transformers
from emergelab.finetune.saved import load_finetuned
from emergelab.io import atomic_dir, atomic_write_json

EXPORT_RECORD = "export.json"


def export_merged(run_dir: str | Path, out_dir: str | Path, *, base_model: str | Path | None = None) -> Path:
    """Merge the run's adapter into its base (``merge_and_unload``) and ``save_pretrained`` it to ``out_dir``.

    The result loads with ``AutoModelFor{Sequence,Token}Classification.from_pretrained(out_dir)`` and
    gives the run's predictions, with ``config.id2label`` naming the labels.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / EXPORT_RECORD).exists():
        raise UserError(f"export directory {out_dir} exists and is not an emergelab export; choose a new or empty directory")
    if out_dir.resolve() == run_dir.resolve() or run_dir.resolve() in out_dir.resolve().parents:
        raise UserError(f"export directory {out_dir} is inside the run directory {run_dir}; choose a directory outside it")
    ft = load_finetuned(run_dir, base_model=base_model)
    method = ft.record["method"]
    if method == "adapter":
        raise UserError("bottleneck adapters are non-linear and cannot be merged into the base weights; export a lora, adalora, ia3 or full run, or use load_finetuned")
    model = ft.model.merge_and_unload() if METHODS[method].uses_peft else ft.model
    names = ft.label_names
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {n: i for i, n in enumerate(names)}
    with quiet_transformers(), atomic_dir(out_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        ft.tokenizer.save_pretrained(str(tmp))
        atomic_write_json(tmp / EXPORT_RECORD, {"exported_from": str(run_dir.resolve()), "merged": METHODS[method].uses_peft,
                                                "method": method, "task": ft.task, "label_names": names,
                                                "base": ft.record["base"], "eval": ft.record["eval"]})
    return out_dir

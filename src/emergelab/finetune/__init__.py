"""Fine-tuning: full and parameter-efficient (LoRA, AdaLoRA, IA3, bottleneck adapters), with sample-efficiency sweeps."""
from emergelab.finetune.config import FinetuneConfig
from emergelab.finetune.export import export_merged
from emergelab.finetune.run import finetune
from emergelab.finetune.saved import Finetuned, load_finetuned
from emergelab.finetune.sweep import finetune_sweep, summarize

__all__ = ["FinetuneConfig", "Finetuned", "export_merged", "finetune", "finetune_sweep", "load_finetuned", "summarize"]

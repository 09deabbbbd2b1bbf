"""Data: labelled examples for probes and fine-tuning."""
from emergelab.data.labelled import LabelledData, load_labelled

__all__ = ["LabelledData", "load_labelled"]

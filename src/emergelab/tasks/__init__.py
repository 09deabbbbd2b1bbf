"""Built-in task YAMLs (lm-evaluation-harness vocabulary); `emergelab evaluate --task NAME` finds them by name."""

"""Evaluation: capability tasks scored with paired metrics (discontinuous beside continuous)."""

"""The report: one self-contained HTML page with the study's figures and verdicts."""

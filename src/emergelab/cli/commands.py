"""Imports every command module so that each registers its command on the app."""
from emergelab.cli import (  # noqa: F401
    study_cmd,
    stage_cmds,
    worlds_cmd,
    evaluate_cmd,
    probe_cmd,
    explain_cmd,
    finetune_cmd,
    report_cmd,
)

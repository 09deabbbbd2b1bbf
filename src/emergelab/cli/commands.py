"""Imports every command module so that each registers its command on the app."""
import emergelab.cli.activations_cmd  # noqa: F401
import emergelab.cli.evaluate_cmd  # noqa: F401
import emergelab.cli.explain_cmd  # noqa: F401
import emergelab.cli.export_cmd  # noqa: F401
import emergelab.cli.finetune_cmd  # noqa: F401
import emergelab.cli.probe_cmd  # noqa: F401
import emergelab.cli.report_cmd  # noqa: F401
import emergelab.cli.stage_cmds  # noqa: F401
import emergelab.cli.study_cmd  # noqa: F401
import emergelab.cli.worlds_cmd  # noqa: F401

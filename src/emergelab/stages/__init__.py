"""Stages: the adapters between the study directory and the libraries, one module per stage.

Each module exposes ``STAGE`` (see ``emergelab.stages.base``): which units are left, how to run them.
"""

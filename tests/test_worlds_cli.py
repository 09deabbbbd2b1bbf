"""`emergelab worlds` lists every world; `worlds show NAME` prints blocks, a task and latents for each."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

import emergelab.cli.commands  # noqa: F401 — registers the commands
from emergelab.cli.app import app
from emergelab.worlds import WORLDS
from tests.test_worlds_text import write_sample_corpus


def _run(*args: str):
    res = CliRunner().invoke(app, list(args))
    return res, res.output + (res.stderr if res.stderr_bytes is not None else "")


def test_worlds_lists_one_line_per_world():
    res, out = _run("worlds")
    assert res.exit_code == 0
    for name in WORLDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(WORLDS))
def test_worlds_show_prints_blocks_tasks_and_latents(name, tmp_path):
    extra = ["--corpus", str(write_sample_corpus(tmp_path / "c")), "--set", "tokenizer.vocab_size=300"] if name == "text" else []
    res, out = _run("worlds", "show", name, "--n", "2", *extra)
    assert res.exit_code == 0, out + repr(res.exception)
    assert "training blocks" in out and "task " in out and "latent " in out
    if name == "text":
        assert "duplicates removed" in out and "next_word" in out and "sentence_position" in out


def test_worlds_show_bad_parameter_is_a_user_error():
    res, out = _run("worlds", "show", "modular", "--set", "p=1")
    assert res.exit_code != 0 and "world_args.p" in str(res.exception)

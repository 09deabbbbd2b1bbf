"""`emergelab activations`: per-layer hidden states of a local model on a text file, as safetensors or Parquet."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from emergelab.cli.app import app, console
from emergelab.errors import UserError


@app.command("activations")
def activations_cmd(
    model: Path = typer.Option(..., "--model", help="A local Hugging Face model directory (safetensors), e.g. a checkpoint."),
    data: Path = typer.Option(..., "--data", help="Texts: a text file (one per line; word/TAG lines lose their tags) or CSV/TSV/JSONL/Parquet with --text-column."),
    out: Path = typer.Option(..., "--out", help="Output file: .safetensors (float16) or .parquet (float32, one row per token)."),
    layers: Optional[list[str]] = typer.Option(None, "--layers", help="Hidden-state indices, e.g. 0,3,-1 (0 = embeddings; the probes' layer numbers); default all."),
    text_column: str = typer.Option("text", "--text-column", help="Column holding the text in a table file."),
    max_examples: Optional[int] = typer.Option(None, "--max-examples", min=1, help="Only the first N texts."),
    max_length: int = typer.Option(128, "--max-length", min=2, help="Truncate each text to this many tokens."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Texts per forward pass."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run the model directory's own Python code (only if you trust it)."),
) -> None:
    """Write the hidden states of chosen layers for every token of every text, with token ids and offsets.

    Tensors are named [bold]hidden_states.<layer>[/bold] ([n_tokens, d_model]) beside
    [bold]input_ids[/bold], [bold]sequence[/bold], [bold]position[/bold] and [bold]offsets[/bold];
    layer numbers are the probes' (emergelab probe's layer column).
    """
    from transformers.utils import logging as hf_logging

    from emergelab.cli.probe_cmd import _parse_layers
    from emergelab.corpus.readers import read_corpus
    from emergelab.probe.activation_file import collect_activations, format_of, write_activations
    from emergelab.probe.standalone import load_local_model, resolve_sites

    format_of(out)  # a bad file name fails before anything loads
    hf_logging.disable_progress_bar()  # the rich status line is the progress display
    if not data.exists():
        raise UserError(f"no text data at {data}; give a text file or a CSV/JSONL file with a {text_column!r} column")
    wanted = _parse_layers(layers)
    texts = read_corpus(data, column=text_column, doc_split="line").documents[:max_examples]
    t0 = time.perf_counter()
    with console.status(f"reading activations of {model} on {len(texts)} texts"):
        net, tokenizer = load_local_model(model, trust_remote_code=trust_remote_code)
        sites = resolve_sites(net, wanted)
        acts = collect_activations(net, tokenizer, texts, layers=sites, max_length=max_length, batch_size=batch_size)
        acts.metadata = {"model": str(model), "data": str(data), "max_length": max_length}
        write_activations(out, acts)
    n_sites, n_tokens, d_model = acts.hidden.shape
    console.print(f"wrote {n_sites} sites ({', '.join(map(str, sites))}) x {n_tokens} tokens x d_model {d_model} "
                  f"of {len(texts)} texts to {out} in {time.perf_counter() - t0:.1f} s")

"""The report's suite-integrity section: each external checkpoint's identity and the audit's flags."""
from __future__ import annotations

import html

from emergelab.report.tables import MAX_OPEN

_FLAG_TEXT = {
    "duplicate": lambda f: f"{f['source']} has the same weights as {f['same_as']} (step {f['same_as_step']}): analysed once",
    "norm_outlier": lambda f: f"weight norm {f['weight_norm']:.4g} leaves the line through its neighbours",
    "out_of_place": lambda f: (f"not between its neighbours: cos to previous {f['cosine_to_previous']:.6f}, "
                               f"previous to next {f['cosine_previous_to_next']:.6f}"),
    "config_change": lambda f: f"config changes since step {f['previous_step']}: {', '.join(f['keys'])}",
}


def _fmt(v, spec: str) -> str:
    return "" if v is None else format(v, spec)


def section(audit: dict) -> str:
    """HTML: the flags (or that there are none), then a table of every checkpoint."""
    flags = audit.get("flags", [])
    if flags:
        items = "".join(f"<li><b>{html.escape(f['rung'])} step {f['step']}</b> ({html.escape(f['kind'])}): "
                        f"{html.escape(_FLAG_TEXT.get(f['kind'], str)(f))}</li>" for f in flags)
        head = f"<p>{len(flags)} flag(s) from the integrity audit:</p><ul>{items}</ul>"
    else:
        head = "<p>The integrity audit flags nothing: every checkpoint's weights are distinct and continuous along its steps.</p>"
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            r["rung"], r["step"], r["source"], r["weights_sha256"][:12], f"{r['n_params']:,}",
            _fmt(r.get("weight_norm"), ".4g"), _fmt(r.get("cosine_to_previous"), ".6f"), r.get("duplicate_of") or "")) + "</tr>"
        for r in audit.get("checkpoints", []))
    header = "".join(f"<th>{h}</th>" for h in ("entry", "step", "source", "sha256", "params", "weight norm",
                                                "cos to previous", "duplicate of"))
    n = len(audit.get("checkpoints", []))
    body = f"<div class='scroll'><table class='suite'><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table></div>"
    return head + (f"<details class='table'><summary>Every checkpoint ({n} rows)</summary>{body}</details>" if n > MAX_OPEN else body)

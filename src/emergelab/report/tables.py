"""HTML tables for the report: cells are already-escaped HTML; a table over ``MAX_OPEN`` rows is
collapsed behind its caption, so no long table lies open on the page."""
from __future__ import annotations

import html

MAX_OPEN = 40


def table(rows: list[list[str]], header: list[str], cls: str = "", caption: str = "", open_max: int = MAX_OPEN) -> str:
    head = "".join(f"<th scope='col'>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    t = f"<div class='scroll'><table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    if len(rows) > open_max:
        summary = html.escape(caption or "Table") + f" ({len(rows)} rows)"
        return f"<details class='table'><summary>{summary}</summary>{t}</details>"
    return (f"<p class='caption'>{html.escape(caption)}</p>" if caption else "") + t

"""The HTML page: inline CSS, no scripts, no external fonts — it opens anywhere, offline."""
from __future__ import annotations

import html

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;color:#1a1a1a;line-height:1.45}
h1{font-size:1.5em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
nav a{margin-right:1em} figure{margin:1em 0} img{max-width:100%;height:auto}
figcaption{font-size:.85em;color:#444} table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top} th{background:#f3f3f3}
.v{padding:.05em .4em;border-radius:.3em;font-weight:600;white-space:nowrap}
.v-emergent{background:#E69F00;color:#000}.v-metric-induced{background:#56B4E9;color:#000}
.v-smooth{background:#009E73;color:#fff}.v-not-learned{background:#bbb;color:#000}.v-insufficient-data{background:#eee;color:#333}
.headline{font-size:1.05em;background:#fafafa;border-left:4px solid #0072B2;padding:.6em 1.4em}
pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:.8em}
"""


def _anchor(name: str) -> str:
    return name.lower().replace(" ", "-")


def page(title: str, sections: list[tuple[str, str]]) -> str:
    nav = "".join(f"<a href='#{_anchor(n)}'>{html.escape(n)}</a>" for n, _ in sections)
    body = "".join(f"<section id='{_anchor(n)}'><h2>{html.escape(n)}</h2>{content}</section>" for n, content in sections)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><nav>{nav}</nav>{body}</body></html>\n")

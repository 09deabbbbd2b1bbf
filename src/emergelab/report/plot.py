"""Plotly figures for the report: the colour-blind-safe palette, the step axis, traces with bands and
hover text, and a figure as the JSON the page renders (lazily, with plotly.js inlined once).

Why Plotly: hover values, legend toggles (a rung's traces share a legend group, so do a seed's),
log axes, error bands and heatmaps all come with the library, and the pinned Python package ships
plotly.js itself, so the offline page needs nothing from the network.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np

#: Okabe & Ito (2008), safe for the common colour-vision deficiencies; rungs take them smallest first.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
SYMBOLS = ["circle", "square", "triangle-up", "diamond", "triangle-down", "cross", "x", "star"]
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


@dataclass
class Plot:
    """One figure: a page-unique id, a title, the description a screen reader gets, and its JSON."""
    id: str
    title: str
    alt: str
    spec: str
    height: int

    def html(self) -> str:
        return (f"<figure class='fig'><div class='plot' id='{self.id}' role='img' aria-label='{html.escape(self.alt, quote=True)}'"
                f" style='height:{self.height}px' data-spec='{self.id}-spec'></div>"
                f"<figcaption><b>{html.escape(self.title)}.</b> {html.escape(self.alt)}</figcaption>"
                f"<script type='application/json' id='{self.id}-spec'>{self.spec}</script></figure>")


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def new(rows: int = 1, cols: int = 1, titles=None, shared_x: bool = False, v_space: float | None = None):
    from plotly.subplots import make_subplots

    kw = {} if v_space is None else {"vertical_spacing": v_space}
    return make_subplots(rows=rows, cols=cols, subplot_titles=titles, shared_xaxes=shared_x,
                         horizontal_spacing=0.07 if cols > 1 else 0.02, **kw)


def finish(fig, fid: str, title: str, alt: str, height: int) -> Plot:
    """Lay the figure out (legend on top, labelled fonts) and serialise it."""
    import plotly.io as pio

    fig.update_layout(template="none", height=height, margin={"l": 60, "r": 20, "t": 70, "b": 50},
                      font={"family": FONT, "size": 11}, hovermode="closest", showlegend=True,
                      legend={"orientation": "h", "x": 0, "xref": "container", "y": 1, "yanchor": "top", "yref": "container",
                              "font": {"size": 10}, "groupclick": "togglegroup"})
    fig.update_annotations(font_size=11)
    fig.update_xaxes(showline=True, linecolor="#888", ticks="outside", zeroline=False, gridcolor="#eee")
    fig.update_yaxes(showline=True, linecolor="#888", ticks="outside", zeroline=False, gridcolor="#eee", tickformat=".3~g")
    spec = pio.to_json(fig, validate=False, pretty=False, engine="json")
    return Plot(fid, title, alt, spec.replace("</", "<\\/"), height)


def step_x(steps) -> np.ndarray:
    """Steps on a log axis: step 0 sits half a checkpoint before the first positive one."""
    s = np.asarray(steps, dtype=float)
    pos = s[s > 0]
    zero_at = (pos.min() / 2) if len(pos) else 0.5
    return np.where(s > 0, s, zero_at)


def step_axis(fig, steps, row: int, col: int, title: str | None) -> None:
    """A log step axis ticked at 0, 1, 10, 100, … (step 0 at its stand-in position)."""
    s = np.asarray(sorted(set(float(v) for v in steps)), dtype=float)
    pos = s[s > 0]
    if not len(pos):
        fig.update_xaxes(title_text=title, row=row, col=col)
        return
    ticks = [10 ** e for e in range(int(math.floor(math.log10(pos.min()))), int(math.ceil(math.log10(pos.max()))) + 1)]
    vals, text = [], []
    if (s == 0).any():
        vals.append(pos.min() / 2)
        text.append("0")
    for t in ticks:
        if pos.min() <= t <= pos.max() * 1.01 and t < pos.max() / 2:
            vals.append(t)
            text.append(f"{t:,}")
    vals.append(float(pos.max()))
    text.append(f"{pos.max():,.0f}")
    fig.update_xaxes(type="log", tickvals=vals, ticktext=text, title_text=title, row=row, col=col)


def band(x, lo, hi, col: str, group: str, alpha: float = 0.18, name: str = "") -> dict:
    """A filled band between lo and hi (no hover), in a legend group so its legend entry toggles it."""
    import plotly.graph_objects as go

    x, lo, hi = (np.asarray(v, dtype=float) for v in (x, lo, hi))
    keep = np.isfinite(lo) & np.isfinite(hi)
    return go.Scatter(x=np.r_[x[keep], x[keep][::-1]], y=np.r_[hi[keep], lo[keep][::-1]], fill="toself", mode="lines",
                      line={"width": 0}, fillcolor=rgba(col, alpha), hoverinfo="skip", showlegend=False,
                      legendgroup=group, name=name)


def vspan(lo: float, hi: float, y0: float, y1: float, col: str, group: str, text: str, alpha: float = 0.13) -> dict:
    """An x interval drawn as a filled box over [y0, y1], with its hover text, toggled with its group."""
    import plotly.graph_objects as go

    return go.Scatter(x=[lo, hi, hi, lo, lo], y=[y0, y0, y1, y1, y0], fill="toself", mode="lines", line={"width": 0},
                      fillcolor=rgba(col, alpha), hoveron="fills", text=text, hoverinfo="text", showlegend=False,
                      legendgroup=group, name=text)


def vline(x: float, y0: float, y1: float, col: str, group: str, text: str, dash: str = "dot") -> dict:
    import plotly.graph_objects as go

    return go.Scatter(x=[x, x], y=[y0, y1], mode="lines", line={"color": col, "width": 1.2, "dash": dash},
                      text=[text, text], hovertemplate="%{text}<extra></extra>", showlegend=False, legendgroup=group,
                      name=text)

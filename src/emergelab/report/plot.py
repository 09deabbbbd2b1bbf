"""Plotly figures for the report: the colour-blind-safe palette, the step axis, traces with bands and
hover text, and a figure as the JSON the page renders (lazily, with plotly.js inlined once).

Why Plotly: hover values, legend toggles (a rung's traces share a legend group, so do a seed's),
log axes, error bands and heatmaps all come with the library, and the pinned Python package ships
plotly.js itself, so the offline page needs nothing from the network.
"""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

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


def _clean(v):
    """JSON-ready: arrays as lists, floats to 5 significant digits, non-finite as null."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray, pd.Series, pd.Index)):
        return [_clean(x) for x in (v.tolist() if hasattr(v, "tolist") else v)]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(f"{v:.5g}") if math.isfinite(v) else None
    return v


class Fig:
    """A Plotly figure as plain data (traces and layout dicts): a grid of subplots like plotly's
    ``make_subplots``, built without its per-property validation (which costs seconds per figure)."""

    def __init__(self, rows: int = 1, cols: int = 1, titles=None, shared_x: bool = False,
                 v_space: float | None = None, h_space: float = 0.07):
        self.rows, self.cols, self.data = rows, cols, []
        v = 0.3 / rows if v_space is None else v_space
        h = h_space if cols > 1 else 0.0
        w, ht = (1 - h * (cols - 1)) / cols, (1 - v * (rows - 1)) / rows
        self.layout: dict = {"annotations": [], "shapes": []}
        for r in range(1, rows + 1):
            for c in range(1, cols + 1):
                k = self._k(r, c)
                x0, y1 = (c - 1) * (w + h), 1 - (r - 1) * (ht + v)
                xa = {"domain": [x0, x0 + w], "anchor": f"y{k if k > 1 else ''}"}
                if shared_x and r < rows:
                    xa.update(matches=f"x{self._k(rows, c) if self._k(rows, c) > 1 else ''}", showticklabels=False)
                self.layout[self._ax("x", k)] = xa
                self.layout[self._ax("y", k)] = {"domain": [y1 - ht, y1], "anchor": f"x{k if k > 1 else ''}"}
                if titles and len(titles) >= k and titles[k - 1]:
                    self.layout["annotations"].append({"text": titles[k - 1], "x": x0 + w / 2, "y": y1, "xref": "paper", "yref": "paper",
                                                       "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": {"size": 11}})

    def _k(self, row: int, col: int) -> int:
        return (row - 1) * self.cols + col

    @staticmethod
    def _ax(letter: str, k: int) -> str:
        return f"{letter}axis{k if k > 1 else ''}"

    def add(self, trace: dict, row: int = 1, col: int = 1) -> None:
        k = self._k(row, col)
        self.data.append({**trace, "xaxis": f"x{k if k > 1 else ''}", "yaxis": f"y{k if k > 1 else ''}"})

    def xaxis(self, row: int = 1, col: int = 1, title: str | None = None, **kw) -> None:
        ax = self.layout[self._ax("x", self._k(row, col))]
        ax.update(kw)
        if title:
            ax["title"] = {"text": title}

    def yaxis(self, row: int = 1, col: int = 1, title: str | None = None, **kw) -> None:
        ax = self.layout[self._ax("y", self._k(row, col))]
        ax.update(kw)
        if title:
            ax["title"] = {"text": title}

    def hline(self, y: float, row: int = 1, col: int = 1, colour: str = "#999999") -> None:
        k = self._k(row, col)
        self.layout["shapes"].append({"type": "line", "xref": f"x{k if k > 1 else ''} domain", "x0": 0, "x1": 1,
                                      "yref": f"y{k if k > 1 else ''}", "y0": y, "y1": y,
                                      "line": {"color": colour, "width": 1, "dash": "dot"}})


def new(rows: int = 1, cols: int = 1, titles=None, shared_x: bool = False, v_space: float | None = None) -> Fig:
    return Fig(rows, cols, titles, shared_x, v_space)


AXIS_STYLE = {"showline": True, "linecolor": "#888", "ticks": "outside", "zeroline": False, "gridcolor": "#eee", "automargin": True}


def finish(fig: Fig, fid: str, title: str, alt: str, height: int) -> Plot:
    """Lay the figure out (legend on top, readable fonts) and serialise it."""
    for name, ax in fig.layout.items():
        if name.startswith(("xaxis", "yaxis")):
            fig.layout[name] = {**AXIS_STYLE, **({"tickformat": ".3~g"} if name.startswith("yaxis") and "type" not in ax else {}), **ax}
    fig.layout.update(height=height, margin={"l": 60, "r": 20, "t": 70, "b": 50}, font={"family": FONT, "size": 11},
                      hovermode="closest", showlegend=True, plot_bgcolor="white", paper_bgcolor="white",
                      legend={"orientation": "h", "x": 0, "xref": "container", "y": 1, "yanchor": "top", "yref": "container",
                              "font": {"size": 10}, "groupclick": "togglegroup"})
    spec = json.dumps(_clean({"data": fig.data, "layout": fig.layout}), separators=(",", ":"), allow_nan=False)
    return Plot(fid, title, alt, spec.replace("<", "\\u003c"), height)


def scatter(**kw) -> dict:
    return {"type": "scatter", **kw}


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
        fig.xaxis(row, col, title)
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
    fig.xaxis(row, col, title, type="log", tickvals=vals, ticktext=text)


def band(x, lo, hi, col: str, group: str, alpha: float = 0.18, name: str = "") -> dict:
    """A filled band between lo and hi (no hover), in a legend group so its legend entry toggles it."""
    x, lo, hi = (np.asarray(v, dtype=float) for v in (x, lo, hi))
    keep = np.isfinite(lo) & np.isfinite(hi)
    return scatter(x=np.r_[x[keep], x[keep][::-1]], y=np.r_[hi[keep], lo[keep][::-1]], fill="toself", mode="lines",
                      line={"width": 0}, fillcolor=rgba(col, alpha), hoverinfo="skip", showlegend=False,
                      legendgroup=group, name=name)


def vspan(lo: float, hi: float, y0: float, y1: float, col: str, group: str, text: str, alpha: float = 0.13) -> dict:
    """An x interval drawn as a filled box over [y0, y1], with its hover text, toggled with its group."""
    return scatter(x=[lo, hi, hi, lo, lo], y=[y0, y0, y1, y1, y0], fill="toself", mode="lines", line={"width": 0},
                      fillcolor=rgba(col, alpha), hoveron="fills", text=text, hoverinfo="text", showlegend=False,
                      legendgroup=group, name=text)


def vline(x: float, y0: float, y1: float, col: str, group: str, text: str, dash: str = "dot") -> dict:
    return scatter(x=[x, x], y=[y0, y1], mode="lines", line={"color": col, "width": 1.2, "dash": dash},
                      text=[text, text], hovertemplate="%{text}<extra></extra>", showlegend=False, legendgroup=group,
                      name=text)


def heatmap(**kw) -> dict:
    return {"type": "heatmap", **kw}

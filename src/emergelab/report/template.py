"""The HTML page: inline CSS, plotly.js inlined once from the pinned package, and a small script that
renders each figure when it scrolls into view or its panel opens — one file that opens offline."""
from __future__ import annotations

import html
from functools import lru_cache

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1240px;margin:.6em auto;padding:0 1em;color:#1a1a1a;line-height:1.4}
h1{font-size:1.35em;margin:.2em 0} h2{border-bottom:1px solid #ddd;padding-bottom:.15em;margin-top:1.4em;font-size:1.2em}
h3{font-size:1.02em;margin:.9em 0 .3em} nav{font-size:.85em;margin:.2em 0 .4em} nav a{margin-right:.9em}
figure{margin:.6em 0} img{max-width:100%;height:auto} figcaption{font-size:.8em;color:#444;max-width:70em}
table{border-collapse:collapse;font-size:.82em;margin:.4em 0} .scroll{overflow-x:auto}
th,td{border:1px solid #ccc;padding:.2em .45em;text-align:left;vertical-align:top} th{background:#f3f3f3}
.v{padding:.02em .35em;border-radius:.3em;font-weight:600;white-space:nowrap}
.v-emergent{background:#E69F00;color:#000}.v-transient{background:#F0E442;color:#000}.v-metric-induced{background:#56B4E9;color:#000}
.v-smooth{background:#009E73;color:#fff}.v-uncertain{background:#CC79A7;color:#000}.v-not-learned{background:#bbb;color:#000}
.v-insufficient-data{background:#eee;color:#333}
.studied{font-size:.9em;margin:.2em 0 .5em;color:#333}
.answers{font-size:.95em;background:#fafafa;border-left:4px solid #0072B2;padding:.4em .8em .4em 1.6em;margin:.3em 0}
.answers li{margin:.2em 0} .answers small{color:#333}
.grid td,.grid th{padding:.1em .2em;text-align:center} .grid th[scope=row]{text-align:left;font-weight:600;max-width:16em}
.grid th[scope=row] small{font-weight:400;color:#555} .grid td.na{color:#aaa}
button.cell{border:1px solid #666;border-radius:.25em;cursor:pointer;font:inherit;font-size:.85em;padding:.1em .2em;min-width:4.8em;line-height:1.1}
button.cell small{display:block;font-size:.85em;font-weight:400} button.cell[aria-expanded=true]{outline:3px solid #000;outline-offset:1px}
button.cell.v-emergent,button.cell.v-transient{font-weight:700}
.cell-panel{border:1px solid #0072B2;border-radius:.3em;padding:.3em .8em;margin:.6em 0;background:#fcfdff}
.evidence{font-size:.85em;padding-left:1.2em} .evidence li{margin:.15em 0}
.hint{font-size:.82em;color:#555;margin:.2em 0} .caption{font-size:.85em;font-weight:600;margin:.6em 0 .1em}
.plot{width:100%;min-height:120px} pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:.8em}
details>summary{cursor:pointer;font-weight:600;font-size:.9em;margin:.3em 0}
"""

SCRIPT = """
(function(){
  var done = {};
  function render(el){
    if (done[el.id] || el.offsetParent === null) return done[el.id] || null;
    var spec = JSON.parse(document.getElementById(el.dataset.spec).textContent);
    done[el.id] = Plotly.newPlot(el, spec.data, spec.layout, {responsive: true, displaylogo: false});
    return done[el.id];
  }
  function renderIn(root){ return Array.prototype.map.call(root.querySelectorAll('.plot'), render); }
  var io = ('IntersectionObserver' in window) ? new IntersectionObserver(function(es){
    es.forEach(function(e){ if (e.isIntersecting && render(e.target)) io.unobserve(e.target); });
  }, {rootMargin: '300px'}) : null;
  document.querySelectorAll('.plot').forEach(function(el){ if (io) io.observe(el); else render(el); });
  document.querySelectorAll('details').forEach(function(d){
    d.addEventListener('toggle', function(){ if (d.open) renderIn(d); });
  });
  document.querySelectorAll('button.cell').forEach(function(b){
    b.addEventListener('click', function(){
      var panel = document.getElementById(b.dataset.panel), opening = panel.hidden;
      document.querySelectorAll('.cell-panel').forEach(function(p){ p.hidden = true; });
      document.querySelectorAll('button.cell').forEach(function(x){ x.setAttribute('aria-expanded', 'false'); });
      if (opening) {
        panel.hidden = false; b.setAttribute('aria-expanded', 'true');
        renderIn(panel); panel.scrollIntoView({block: 'nearest'});
      }
    });
  });
  // for the browser check: open everything, render every figure, resolve when all are drawn
  window.emergelab = {renderAll: function(){
    document.querySelectorAll('details').forEach(function(d){ d.open = true; });
    document.querySelectorAll('.cell-panel').forEach(function(p){ p.hidden = false; });
    return Promise.all(renderIn(document)).then(function(){ return document.querySelectorAll('.plot').length; });
  }};
})();
"""


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The pinned plotly package's own plotly.min.js (no network)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def anchor(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower())


def page(title: str, head: str, sections: list[tuple[str, str, str]]) -> str:
    """``head``: the first screen under the title; ``sections``: (id, heading, html)."""
    nav = "".join(f"<a href='#{sid}'>{html.escape(name)}</a>" for sid, name, _ in sections)
    body = "".join(f"<section id='{sid}'><h2>{html.escape(name)}</h2>{content}</section>" for sid, name, content in sections)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><header><h1>{html.escape(title)}</h1>{head}<nav>{nav}</nav></header>{body}"
            f"<script>{plotly_js()}</script><script>{SCRIPT}</script></body></html>\n")

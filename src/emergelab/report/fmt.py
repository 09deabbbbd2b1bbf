"""Numbers as a reader wants them: steps as integers, parameters as 29k / 1.2M, compute as 3.4e12,
intervals as [lo, hi]. Every number the report prints goes through here."""
from __future__ import annotations

import math
import numbers

AXIS_NAME = {"params": "parameters", "step": "training step", "flops": "training compute", "loss": "pretraining loss"}
AXIS_SHORT = {"params": "params", "step": "steps", "flops": "compute", "loss": "loss"}
AXIS_UNIT = {"params": "parameters (log scale)", "step": "training step (optimizer updates)",
             "flops": "training compute (FLOPs, log scale)", "loss": "held-out pretraining loss (nats/token)"}


def _finite(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def count(n) -> str:
    """1328 → '1.3k', 29000 → '29k', 1_234_567 → '1.2M', 512 → '512'."""
    if not _finite(n):
        return "n/a"
    a = abs(float(n))
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            v = n / div
            return (f"{v:.1f}" if abs(v) < 10 else f"{v:.0f}") + suffix
    return f"{n:.0f}" if float(n).is_integer() or a >= 10 else f"{n:.2g}"


def step(x) -> str:
    """Steps are integers: 2000 → '2,000' (an onset between checkpoints is rounded)."""
    return f"{x:,.0f}" if _finite(x) else "n/a"


def sci(x) -> str:
    """Compute: 3.4e+12 → '3.4e12'."""
    if not _finite(x):
        return "n/a"
    if x == 0:
        return "0"
    m, e = f"{x:.2g}".split("e") if "e" in f"{x:.2g}" else (f"{x:.2g}", None)
    return m if e is None else f"{m}e{int(e)}"


def num(v, digits: int = 3) -> str:
    """A measured value: three significant figures, no exponent for ordinary magnitudes."""
    if not _finite(v):
        return "n/a"
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return sci(v)
    return f"{v:.{digits}g}"


def on_axis(axis: str, x) -> str:
    """A bare point on an axis, in that axis' format (a negative one with a true minus sign)."""
    s = step(x) if axis == "step" else count(x) if axis == "params" else sci(x) if axis == "flops" else num(x)
    return "−" + s[1:] if s.startswith("-") else s


def with_unit(axis: str, x) -> str:
    """'step 1,250', '29k params', '3.4e12 FLOPs', 'loss 2.31'."""
    if axis == "step":
        return f"step {step(x)}"
    if axis == "params":
        return f"{count(x)} params"
    if axis == "flops":
        return f"{sci(x)} FLOPs"
    return f"loss {num(x)}"


def interval(axis: str, ci) -> str:
    """'[1,000, 1,500]'; '' without an interval."""
    if not ci or len(ci) != 2 or not all(_finite(v) for v in ci):
        return ""
    lo, hi = sorted(ci)
    return f"[{on_axis(axis, lo)}, {on_axis(axis, hi)}]"


def signed(axis: str, d) -> str:
    """A difference on an axis: '+250 steps', '−1.2k params'."""
    if not _finite(d):
        return "n/a"
    sign = "+" if d > 0 else "−" if d < 0 else "±"
    unit = {"step": " steps", "params": " params", "flops": " FLOPs", "loss": " nats"}[axis]
    return f"{sign}{on_axis(axis, abs(d))}{unit}"


def share(s) -> str:
    return f"{s:.2f}" if _finite(s) else ""


def pm(v, se) -> str:
    """'0.812 ± 0.031' (the ± part only where an error was estimated)."""
    return num(v) + (f" ± {num(se, 2)}" if _finite(se) and se > 0 else "")

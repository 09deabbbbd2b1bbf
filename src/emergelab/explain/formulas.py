"""The candidate curve models as pure numpy formulas, and ``evaluate`` to draw a fitted one.

Every formula takes the raw x (parameters, steps, FLOPs or held-out loss) first and its parameters
by name; the ``*_in_log`` forms work in t = log10 x, so a midpoint ``x0`` or breakpoint is in
decades (log10 units) and ``slope`` is per decade. The plain forms (used on the loss axis) work in
x itself. ``MODELS`` names each fitted model, its formula, parameter names and family (``smooth``
or ``sharp``); the name stored in ``explanations.json`` is a key of ``MODELS``. ``power_law`` is the same
formula on every axis.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.special import expit

#: 10 %→90 % width of a logistic, in units of 1/slope: 2·ln 9.
LOGISTIC_10_90 = 2.0 * np.log(9.0)


def log10_x(x: np.ndarray) -> np.ndarray:
    """t = log10 x (x must be positive)."""
    return np.log10(np.asarray(x, dtype=float))


def linear(x, intercept, slope):
    """y = intercept + slope·x"""
    return intercept + slope * np.asarray(x, dtype=float)


def linear_in_log(x, intercept, slope):
    """y = intercept + slope·log10 x"""
    return linear(log10_x(x), intercept, slope)


def power_law(x, a, b, c):
    """y = a + b·x^c"""
    return a + b * np.power(np.asarray(x, dtype=float), c)


def sigmoid(x, floor, ceiling, x0, slope):
    """y = floor + (ceiling − floor) / (1 + exp(−slope·(x − x0)))

    ``floor`` is the asymptote as x → −∞ and ``ceiling`` as x → +∞ (ceiling < floor for a curve
    that falls with x); ``x0`` is the midpoint and the 10 %→90 % width is 2·ln 9 / slope.
    """
    return floor + (ceiling - floor) * expit(slope * (np.asarray(x, dtype=float) - x0))


def sigmoid_in_log(x, floor, ceiling, x0, slope):
    """y = floor + (ceiling − floor) / (1 + exp(−slope·(log10 x − x0)))  (x0 in decades)"""
    return sigmoid(log10_x(x), floor, ceiling, x0, slope)


def breakpoint(x, x0, y0, slope_before, slope_after):
    """y = y0 + slope_before·min(x − x0, 0) + slope_after·max(x − x0, 0)

    Two straight lines that meet at (x0, y0): continuous, with one change of slope at x0.
    """
    d = np.asarray(x, dtype=float) - x0
    return y0 + slope_before * np.minimum(d, 0.0) + slope_after * np.maximum(d, 0.0)


def breakpoint_in_log(x, x0, y0, slope_before, slope_after):
    """y = y0 + slope_before·min(log10 x − x0, 0) + slope_after·max(log10 x − x0, 0)  (x0 in decades)"""
    return breakpoint(log10_x(x), x0, y0, slope_before, slope_after)


def exact_match_from_token_accuracy(p, length):
    """EM = p^L: the chance that all L answer tokens are right when each is right with probability p."""
    return np.power(np.clip(np.asarray(p, dtype=float), 0.0, 1.0), length)


def logistic_width(slope: float) -> float:
    """10 %→90 % width of a logistic with the given slope: 2·ln 9 / slope (in the units of x0)."""
    return float(LOGISTIC_10_90 / slope) if slope > 0 else float("inf")


@dataclass(frozen=True)
class ModelForm:
    """A named curve model: its formula, parameter names, family and whether it works in log10 x."""

    name: str
    func: Callable[..., np.ndarray]
    params: tuple[str, ...]
    family: str  # "smooth" | "sharp"
    log_x: bool
    onset_param: str | None  # the parameter that locates the transition (sharp models)
    label: str  # for sentences: "sigmoid in log-{x}"


MODELS: dict[str, ModelForm] = {
    m.name: m
    for m in (
        ModelForm("linear_log", linear_in_log, ("intercept", "slope"), "smooth", True, None, "linear in log-{x}"),
        ModelForm("power_law", power_law, ("a", "b", "c"), "smooth", False, None, "power law in {x}"),
        ModelForm("sigmoid_log", sigmoid_in_log, ("floor", "ceiling", "x0", "slope"), "sharp", True, "x0",
                  "sigmoid in log-{x}"),
        ModelForm("breakpoint_log", breakpoint_in_log, ("x0", "y0", "slope_before", "slope_after"), "sharp",
                  True, "x0", "breakpoint in log-{x}"),
        ModelForm("linear", linear, ("intercept", "slope"), "smooth", False, None, "linear in {x}"),
        ModelForm("sigmoid", sigmoid, ("floor", "ceiling", "x0", "slope"), "sharp", False, "x0", "sigmoid in {x}"),
        ModelForm("breakpoint", breakpoint, ("x0", "y0", "slope_before", "slope_after"), "sharp", False, "x0",
                  "breakpoint in {x}"),
    )
}

#: The four candidate models on a log axis (params, step, flops) and on a linear axis (loss).
LOG_AXIS_MODELS = ("linear_log", "power_law", "sigmoid_log", "breakpoint_log")
LINEAR_AXIS_MODELS = ("linear", "power_law", "sigmoid", "breakpoint")


def evaluate(model_name: str, params: dict, x: np.ndarray) -> np.ndarray:
    """The fitted curve ``model_name`` with ``params`` (as stored in explanations.json) at ``x``."""
    if model_name not in MODELS:
        raise KeyError(f"unknown model {model_name!r}; known models: {', '.join(MODELS)}")
    form = MODELS[model_name]
    x = np.asarray(x, dtype=float)
    with np.errstate(all="ignore"):
        return form.func(x, *(float(params[p]) for p in form.params))

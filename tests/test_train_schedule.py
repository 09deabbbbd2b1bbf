"""Learning-rate schedules: linear warmup, then constant, cosine or linear decay to 10 % (known values)."""
from __future__ import annotations

import math

import pytest

from emergelab.train.schedule import lr_at


def test_warmup_is_linear_then_schedules_decay_to_the_floor():
    kw = dict(lr=1.0, warmup=4, total=104)
    assert [lr_at(s, schedule="cosine", **kw) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, schedule="cosine", **kw) == pytest.approx(1.0)
    assert lr_at(54, schedule="cosine", **kw) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way: cos(π/2) = 0
    assert lr_at(104, schedule="cosine", **kw) == pytest.approx(0.1)
    assert lr_at(54, schedule="linear", **kw) == pytest.approx(1 - 0.9 * 0.5)
    assert lr_at(104, schedule="linear", **kw) == pytest.approx(0.1)
    assert all(lr_at(s, schedule="constant", **kw) == 1.0 for s in range(4, 104))
    s = 30
    assert lr_at(s, schedule="cosine", **kw) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 26 / 100)))


def test_no_warmup_starts_at_full_rate():
    assert lr_at(0, lr=3e-4, warmup=0, total=10, schedule="cosine") == pytest.approx(3e-4)
    with pytest.raises(ValueError):
        lr_at(0, lr=1.0, warmup=0, total=10, schedule="exponential")

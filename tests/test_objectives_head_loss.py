"""The fused, chunked head + cross-entropy: the same loss and gradients as the plain computation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from emergelab.objectives import head_loss
from emergelab.objectives.head_loss import linear_cross_entropy

torch.set_num_threads(1)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("n", [0, 1, 37, 700])
def test_loss_and_gradients_equal_the_plain_head(monkeypatch, bias, n):
    monkeypatch.setattr(head_loss, "CHUNK_BYTES", 4 * 97 * 64)  # 64 rows per chunk: several chunks
    g = torch.Generator().manual_seed(n)
    h = torch.randn(n, 16, generator=g, requires_grad=True)
    w = (torch.randn(97, 16, generator=g) * 0.3).requires_grad_()
    b = (torch.randn(97, generator=g) * 0.1).requires_grad_() if bias else None
    t = torch.randint(0, 97, (n,), generator=g)
    ours = linear_cross_entropy(h, w, b, t) * 0.5
    ours.backward()
    grads = [h.grad.clone(), w.grad.clone()] + ([b.grad.clone()] if bias else [])
    for p in [h, w] + ([b] if bias else []):
        p.grad = None
    ref = F.cross_entropy(h @ w.t() + (b if bias else 0), t, reduction="sum") * 0.5
    ref.backward()
    assert abs(ours.item() - ref.item()) < 1e-4 * max(1, abs(ref.item()))
    for mine, p in zip(grads, [h, w] + ([b] if bias else [])):
        assert torch.allclose(mine, p.grad, atol=1e-5), p.shape


def test_bf16_autocast_close_to_fp32():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(300, 32, generator=g, requires_grad=True)
    w = (torch.randn(500, 32, generator=g) * 0.1).requires_grad_()
    t = torch.randint(0, 500, (300,), generator=g)
    ref = linear_cross_entropy(h, w, None, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = linear_cross_entropy(h, w, None, t)
    low.backward()
    assert low.dtype == torch.float32 and abs(low.item() / ref.item() - 1) < 1e-2
    assert w.grad.dtype == torch.float32 and h.grad.dtype == torch.float32

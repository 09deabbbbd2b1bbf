"""The vocabulary head and its cross-entropy, fused and chunked: the [N, V] logits never exist whole.

For small models with real vocabularies the head (``h @ Wᵀ + b``, softmax, cross-entropy) dominates
a training step, and most of its cost is memory traffic over the logits: written by the matmul, read
and written by log-softmax, again by its backward, again by the matmul's backward. Here each chunk of
rows makes its logits, turns them into their gradient in place (softmax − one-hot) and immediately
multiplies them back, so the chunk stays in cache; the gradients of ``h``, ``W`` and ``b`` are formed
during the forward pass and scaled in the backward pass. The loss equals
``F.cross_entropy(h @ W.T + b, target, reduction="sum")``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: bytes of float32 logits per chunk: big enough for efficient matmuls, small enough for the cache
CHUNK_BYTES = 16 << 20


def chunk_rows(vocab: int) -> int:
    return max(32, CHUNK_BYTES // (4 * vocab))


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, target):
        n, vocab = h.shape[0], weight.shape[0]
        rows = min(n, chunk_rows(vocab))
        autocast = torch.is_autocast_enabled(h.device.type)
        loss = torch.zeros((), dtype=torch.float32, device=h.device)
        grad_h = torch.empty_like(h)
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        grad_b = torch.zeros(vocab, dtype=torch.float32, device=weight.device) if bias is not None else None
        buf = None if autocast else torch.empty(rows, vocab, dtype=h.dtype, device=h.device)  # reused: no page faults
        for s in range(0, n, rows):
            hc, tc = h[s:s + rows], target[s:s + rows]
            c = hc.shape[0]
            if autocast:  # let autocast pick the matmul precision
                logits = (hc @ weight.t() if bias is None else torch.addmm(bias, hc, weight.t())).float()
            else:
                logits = torch.mm(hc, weight.t(), out=buf[:c]) if bias is None else torch.addmm(
                    bias, hc, weight.t(), out=buf[:c])
            picked = logits.gather(1, tc[:, None]).squeeze(1).float()
            top = logits.amax(dim=-1, keepdim=True)
            g = logits.sub_(top).exp_()  # exp(logit − max), in place
            total = g.sum(dim=-1, keepdim=True)
            loss += (total.log().squeeze(1).float() + top.squeeze(1).float() - picked).sum()
            g.div_(total)  # softmax
            g[torch.arange(c, device=g.device), tc] -= 1.0  # d loss / d logits
            if autocast:
                grad_h[s:s + rows] = g @ weight
                grad_w += g.t() @ hc
            else:
                torch.mm(g, weight, out=grad_h[s:s + rows])
                grad_w.addmm_(g.t(), hc)
            if grad_b is not None:
                grad_b += g.sum(0)
        ctx.save_for_backward(grad_h, grad_w, grad_b if grad_b is not None else torch.empty(0))
        ctx.has_bias = bias is not None
        ctx.dtypes = (weight.dtype, bias.dtype if bias is not None else None)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        grad_h, grad_w, grad_b = ctx.saved_tensors
        gb = (grad_b * grad_loss).to(ctx.dtypes[1]) if ctx.has_bias else None
        return grad_h * grad_loss, (grad_w * grad_loss).to(ctx.dtypes[0]), gb, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                         target: torch.Tensor) -> torch.Tensor:
    """Σ cross-entropy of ``h @ weight.T + bias`` ([N, d] × [V, d]) against ``target`` [N] (no ignored rows)."""
    if h.shape[0] == 0:  # nothing to predict: zero, but every input still gets a (zero) gradient
        return sum(x.float().sum() for x in (h, weight, bias) if x is not None) * 0.0
    if not torch.is_grad_enabled() or not (h.requires_grad or weight.requires_grad):
        logits = h @ weight.t() if bias is None else torch.addmm(bias, h, weight.t())
        return F.cross_entropy(logits.float(), target, reduction="sum")
    return _LinearCrossEntropy.apply(h, weight, bias, target)

"""When a packed member counts as reproducing its ordinary trial, on any CPU.

Exact (2e-5, float32 rounding of the sums) where both take the same kernels. Torch picks its CPU
kernels by the CPU: with `default` and `avx2` (the families measured here, an AMD EPYC with AVX2:
packed vs ordinary at most 5e-6 apart on every metric of tests/test_pack.py's 13 configs) the
batched matmul and `nn.Linear` round alike. With other families (`avx512`, ARM) they may differ in
the last bit, and training amplifies it: on an AVX-512 EPYC an AdaGrad member's train_acc was
0.8713 against 0.8700 after 3 epochs. There the bar is what one ulp does to the *same ordinary
trial* (scripts/ulp_spread.py: every initial weight moved one ulp, 3 draws, 13 configs, 3 epochs):
at most 0.72% of a loss and 0.006 of an accuracy (3 of 500 validation images; AdaGrad only, the
others moved under 1e-5), so members must stay within twice that. A wrong update does not: `test_the_bar_tells_a_wrong_update_apart`.
"""

from __future__ import annotations

import math

import torch

CAPABILITY = torch.backends.cpu.get_cpu_capability()
SAME_KERNELS = CAPABILITY in ("DEFAULT", "AVX2")
EXACT = 2e-5
LOSS_REL = 0.015  # 2 x the 0.72% one ulp moved a loss
ACC_ABS = 0.012   # 2 x the 0.006 one ulp moved an accuracy
LOOSE_SKIP = ("best_epoch",)  # which epoch was best may flip between near-equal epochs


def close(key: str, want: float, got: float, exact: bool) -> bool:
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    if want == got or abs(want - got) <= EXACT:
        return True
    if exact or key in LOOSE_SKIP or key == "n_params":
        return False
    if key.endswith("loss"):
        return abs(want - got) <= LOSS_REL * max(abs(want), abs(got))
    return abs(want - got) <= ACC_ABS


def differences(want: list[dict], got: list[dict], keys, exact: bool = SAME_KERNELS) -> list[str]:
    """Every (epoch, metric) where `got` leaves the bar; empty when the member reproduces."""
    if len(want) != len(got):
        return [f"{len(got)} epochs, not {len(want)}"]
    return [f"epoch {e + 1} {k}: {w[k]} vs {g[k]}" for e, (w, g) in enumerate(zip(want, got, strict=True))
            for k in keys if not close(k, w[k], g[k], exact)]

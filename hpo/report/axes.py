"""Value axes that keep the good trials readable when some collapse.

One trial at MSE 117,000 flattens every other curve to 0; trials stuck at chance accuracy
squeeze the good ones into the top of a 0-1 axis. `readable_range` finds the trials whose best
value lies far on the bad side of the others (more than FAR robust standard deviations from the
median of the trials' best values, and more than twice what the other trials span) and sets the
axis to what the other trials reach; the figure says so, naming how many trials leave the axis
and how far. Quartiles would not do: with 2 of 7 trials at chance they reach the collapse.
"""

from __future__ import annotations

import math
from typing import Any

FAR = 6.0  # robust standard deviations (1.4826 x the median absolute deviation) from the median
MIN_TRIALS = 4  # fewer: no quartiles worth the name, the axis is left as it is


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def readable_range(values: dict[str, list[float]], mode: str) -> tuple[list[float] | None, str | None]:
    """(a y-range over the trials that did not collapse, a note saying what left it), or
    (None, None) when no trial is far out. `values`: trial id -> its finite values shown on the
    axis (every epoch of a curve, or its one best value)."""
    vals = {t: [v for v in vs if v is not None and math.isfinite(v)] for t, vs in values.items()}
    vals = {t: vs for t, vs in vals.items() if vs}
    if len(vals) < MIN_TRIALS:
        return None, None
    best = {t: (max(vs) if mode == "max" else min(vs)) for t, vs in vals.items()}
    med = _quantile(list(best.values()), 0.5)
    sigma = 1.4826 * _quantile([abs(b - med) for b in best.values()], 0.5)  # robust: MAD
    worse = {t: (med - b if mode == "max" else b - med) for t, b in best.items()}
    far = [t for t, d in worse.items() if d > FAR * sigma]
    if not far:
        return None, None
    shown = [v for t, vs in vals.items() if t not in far for v in vs]
    # and far beyond what the others span, or clipping would hide little and cost context
    out = [t for t in far if worse[t] > 2 * (max(shown) - min(shown))]
    if not out:
        return None, None
    kept = [v for t, vs in vals.items() if t not in out for v in vs]
    lo, hi = min(kept), max(kept)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 0.05
    rng = [lo - pad, hi + pad]
    gone = [v for t in out for v in vals[t] if not rng[0] <= v <= rng[1]]
    extreme = (min(gone) if mode == "max" else max(gone)) if gone else None
    side = "below" if mode == "max" else "above"
    note = (f"axis clipped to the {len(vals) - len(out)} trials that did not collapse: "
            f"{len(out)} trial(s) {side} it" + (f" (to {extreme:.4g})" if extreme is not None else ""))
    return rng, note


DECADES = 2.0  # positive values spanning more than this many powers of ten get a log axis


def log_scale(values: dict[str, list[float]]) -> str | None:
    """The note for a log axis when the positive values span more than DECADES powers of ten
    (errors of a regression: 1e-4 next to 0.2, which a linear axis draws as 0), else None."""
    vals = [v for vs in values.values() for v in vs if v is not None and math.isfinite(v)]
    if not vals or min(vals) <= 0 or math.log10(max(vals) / min(vals)) <= DECADES:
        return None
    return f"log scale: the values span {min(vals):.3g} to {max(vals):.3g}"


def clip(fig: Any, values: dict[str, list[float]], mode: str, row: int | None = None,
         col: int | None = None, xref: str = "x domain", yref: str = "y domain") -> str | None:
    """Make `fig`'s y-axis (at row/col) readable and write why on the panel: a log axis where
    the values span decades (`log_scale`), else `readable_range`; None when left as it is."""
    kw = {"row": row, "col": col} if row is not None else {}
    note = log_scale(values)
    if note is not None:
        fig.update_yaxes(type="log", **kw)
        fig.add_annotation(text=note, xref=xref, yref=yref, x=0.98, y=0.98, xanchor="right",
                           yanchor="top", showarrow=False, font=dict(size=10, color="#555"),
                           bgcolor="rgba(255,255,255,0.7)")
        return note
    rng, note = readable_range(values, mode)
    if rng is None:
        return None
    fig.update_yaxes(range=rng, **kw)
    fig.add_annotation(text=note, xref=xref, yref=yref, x=0.02, y=0.02 if mode == "max" else 0.98,
                       xanchor="left", yanchor="bottom" if mode == "max" else "top", showarrow=False,
                       font=dict(size=10, color="#b00"), bgcolor="rgba(255,255,255,0.7)")
    return note

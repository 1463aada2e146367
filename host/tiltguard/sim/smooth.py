"""Piecewise-constant profiles with cosine ramps, evaluated with their exact time derivative.

A profile holds ``values[j]`` on segment ``j`` (between ``edges[j-1]`` and ``edges[j]``) and ramps from one
value to the next over ``widths[j]`` seconds centred on ``edges[j]``. Ramps never overlap (widths are clipped
to the neighbouring segments), so each sample sees at most two ramps: O(N) with ``searchsorted``.
"""

from __future__ import annotations

import numpy as np


class Profile:
    """Smooth step profile; ``__call__(t)`` returns ``(value, d value / dt)``.

    ``values`` may be 2-D (segments x columns): several profiles sharing edges cost one evaluation.
    """

    def __init__(self, edges, values, widths) -> None:
        edges = np.asarray(edges, dtype=float)
        values = np.asarray(values, dtype=float)
        if len(values) != len(edges) + 1:
            raise ValueError("need one more value than edges")
        widths = np.broadcast_to(np.asarray(widths, dtype=float), edges.shape).copy()
        if len(edges):
            seg = np.diff(np.concatenate([[-np.inf], edges, [np.inf]]))
            # a ramp may use at most half of each neighbouring segment
            widths = np.minimum(widths, np.minimum(seg[:-1], seg[1:]))
        self.edges, self.values, self.widths = edges, values, np.maximum(widths, 1e-9)

    def __call__(self, t):
        t = np.asarray(t, dtype=float)
        j = np.searchsorted(self.edges, t, side="right")   # segment index of each t
        val = self.values[j]
        der = np.zeros_like(val)
        if not len(self.edges):
            return val, der
        delta = np.diff(self.values, axis=0)                 # jump at each edge
        tf, jf = t.ravel(), j.ravel()
        vf, df = val.reshape(len(tf), -1), der.reshape(len(tf), -1)
        dflat = delta.reshape(len(delta), -1)
        for side in (0, 1):                                  # edge on the right (j) and on the left (j-1)
            e = jf - side
            ec = np.clip(e, 0, len(self.edges) - 1)
            x = (tf - self.edges[ec]) / self.widths[ec] + 0.5
            near = np.flatnonzero((e >= 0) & (e < len(self.edges)) & (x > 0) & (x < 1))
            if not len(near):
                continue
            xn, en = x[near], ec[near]
            s = 0.5 - 0.5 * np.cos(np.pi * xn) - side         # right edge: rise by s; left edge: remove (1 - s)
            ds = 0.5 * np.pi * np.sin(np.pi * xn) / self.widths[en]
            vf[near] += dflat[en] * s[:, None]
            df[near] += dflat[en] * ds[:, None]
        return val, der

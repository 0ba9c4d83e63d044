"""Monotone piecewise-cubic Hermite interpolation (PCHIP; Fritsch & Carlson 1980, with the slopes of Fritsch &
Butland 1984), for increasing data: C1, exact at the knots, increasing between them, and cheap to invert."""

from __future__ import annotations

import torch
from torch import Tensor

INVERSE_ITERATIONS = 60
"""Bisection steps of :meth:`MonotoneCubic.inverse`: 2^-60 of a segment, below float64's resolution."""


def pchip_slopes(x: Tensor, y: Tensor) -> Tensor:
    """Knot slopes d_k for increasing data: at an interior knot the weighted harmonic mean of the secants m_{k-1}, m_k,
    (w1 + w2) / (w1 / m_{k-1} + w2 / m_k) with w1 = 2 h_k + h_{k-1}, w2 = h_k + 2 h_{k-1} (Fritsch & Butland 1984); at
    an end the one-sided three-point slope ((2 h0 + h1) m0 - h0 m1) / (h0 + h1), or 0 where that is negative (Moler
    2004, Numerical Computing with MATLAB, 3.6); the secant itself for two knots. Then every
    |d_k| <= 3 min(m_{k-1}, m_k), which keeps each cubic piece increasing (Fritsch & Carlson 1980)."""
    h = x.diff()
    m = y.diff() / h
    if len(x) == 2:
        return torch.cat([m, m])
    w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
    interior = (w1 + w2) / (w1 / m[:-1] + w2 / m[1:])
    first = ((2 * h[0] + h[1]) * m[0] - h[0] * m[1]) / (h[0] + h[1])
    last = ((2 * h[-1] + h[-2]) * m[-1] - h[-1] * m[-2]) / (h[-1] + h[-2])
    return torch.cat([first.clamp_min(0)[None], interior, last.clamp_min(0)[None]])


def hermite(s: Tensor, y0: Tensor, y1: Tensor, dy0: Tensor, dy1: Tensor) -> Tensor:
    """The cubic Hermite polynomial on s in [0, 1] with values y0, y1 and s-derivatives dy0, dy1 at its ends:
    y0 h00 + y1 h01 + dy0 h10 + dy1 h11 (exactly y0 at s = 0 and y1 at s = 1)."""
    s2, s3 = s * s, s * s * s
    return y0 * (2 * s3 - 3 * s2 + 1) + y1 * (3 * s2 - 2 * s3) + dy0 * (s3 - 2 * s2 + s) + dy1 * (s3 - s2)


class MonotoneCubic:
    """y(x) through the knots (x_k, y_k), x and y strictly increasing: PCHIP, clamped to [y_0, y_n] outside
    [x_0, x_n]; :meth:`inverse` gives x(y). Knots in float64 on the CPU, evaluated in float64 on the input's device.
    """

    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x.to(torch.float64), y.to(torch.float64)
        if len(self.x) < 2 or not bool((self.x.diff() > 0).all() and (self.y.diff() > 0).all()):
            raise ValueError("MonotoneCubic needs two or more knots with x and y strictly increasing")
        self.slopes = pchip_slopes(self.x, self.y)

    def segment(self, knots: Tensor, value: Tensor, device: torch.device) -> Tensor:
        """Index k of the segment [knots_k, knots_k+1] that holds each value (the first or last one outside)."""
        return (torch.searchsorted(knots.to(device), value, right=True) - 1).clamp(0, len(knots) - 2)

    def pieces(self, k: Tensor, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """x_k, its width h_k, and y_k, y_k+1, with the slopes scaled to s = (x - x_k) / h_k, of segments k."""
        x, y, d = (v.to(device) for v in (self.x, self.y, self.slopes))
        h = x[k + 1] - x[k]
        return x[k], h, y[k], y[k + 1], torch.stack([d[k] * h, d[k + 1] * h])

    def __call__(self, value: Tensor) -> Tensor:
        v = value.to(torch.float64).clamp(float(self.x[0]), float(self.x[-1]))
        k = self.segment(self.x, v, v.device)
        x0, h, y0, y1, dy = self.pieces(k, v.device)
        return hermite((v - x0) / h, y0, y1, dy[0], dy[1])

    def inverse(self, value: Tensor) -> Tensor:
        """x(y) for y clamped to [y_0, y_n]: bisection inside the segment, where the cubic increases."""
        v = value.to(torch.float64).clamp(float(self.y[0]), float(self.y[-1]))
        k = self.segment(self.y, v, v.device)
        x0, h, y0, y1, dy = self.pieces(k, v.device)
        low, high = torch.zeros_like(v), torch.ones_like(v)
        for _ in range(INVERSE_ITERATIONS):
            middle = (low + high) / 2
            below = hermite(middle, y0, y1, dy[0], dy[1]) < v
            low, high = torch.where(below, middle, low), torch.where(below, high, middle)
        return x0 + h * torch.where(v <= y0, 0.0, torch.where(v >= y1, 1.0, (low + high) / 2))

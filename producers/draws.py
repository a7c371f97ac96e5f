"""The port model's random draws without `random.Random`'s per-call overhead, draw for draw the same.

A `gammavariate` call re-checks its arguments and recomputes three constants of Cheng's algorithm
each time; the model makes four or five per vehicle with two fixed shapes. `choices` builds a list
for one element. These closures bind `rng.random` once and do exactly the arithmetic of CPython's
`random` module (identical in 3.11 to 3.13), so the same seed gives the same floats and leaves the
generator in the same state: a run's events stay byte for byte what they were (tests hold each
draw to the stdlib's).
"""

from __future__ import annotations

from bisect import bisect
from collections.abc import Callable, Sequence
from math import exp, log, sqrt

LOG4 = log(4.0)
SG_MAGICCONST = 1.0 + log(4.5)


def gamma(random: Callable[[], float], alpha: float) -> Callable[[float], float]:
    """`draw(beta)` = `rng.gammavariate(alpha, beta)` for `random` = `rng.random`, one shape alpha > 1."""
    if not alpha > 1.0:
        raise ValueError("gamma: this shortcut is the stdlib's branch for alpha > 1 only")
    ainv = sqrt(2.0 * alpha - 1.0)
    bbb = alpha - LOG4
    ccc = alpha + ainv

    def draw(beta: float) -> float:
        while True:
            u1 = random()
            if not 1e-7 < u1 < 0.9999999:
                continue
            u2 = 1.0 - random()
            v = log(u1 / (1.0 - u1)) / ainv
            x = alpha * exp(v)
            z = u1 * u1 * u2
            r = bbb + ccc * v - x
            if r + SG_MAGICCONST - 4.5 * z >= 0.0 or r >= log(z):
                return x * beta

    return draw


def choice(random: Callable[[], float], population: Sequence[str], cum_weights: Sequence[float]) -> Callable[[], str]:
    """`pick()` = `rng.choices(population, cum_weights=cum_weights)[0]` for `random` = `rng.random`."""
    if len(cum_weights) != len(population) or not population:
        raise ValueError("choice: one cumulative weight per element")
    total = cum_weights[-1] + 0.0
    if not 0.0 < total < float("inf"):
        raise ValueError("choice: the total of the weights must be positive and finite")
    hi = len(population) - 1
    items, cum = tuple(population), list(cum_weights)

    def pick() -> str:
        return items[bisect(cum, random() * total, 0, hi)]

    return pick


def expo(random: Callable[[], float]) -> Callable[[float], float]:
    """`draw(lambd)` = `rng.expovariate(lambd)` for `random` = `rng.random`."""

    def draw(lambd: float) -> float:
        return -log(1.0 - random()) / lambd

    return draw

"""How good is the model, honestly?

Active learning picks the items the model finds hard, so accuracy measured on the labels it
chose (cross-validated or not) is biased.  The unbiased number is accuracy on *audit* items —
a uniform random share of what annotators label — reported with a 95 % Wilson score interval
(Wilson 1927), which unlike the normal ("Wald") interval stays inside [0, 1] and keeps its
coverage for small samples and accuracies near 0 or 1 (Brown, Cai & DasGupta 2001).
"""

from __future__ import annotations

import math
from statistics import NormalDist


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; ``(0.0, 1.0)`` when ``n == 0``."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4 * n * n)) / denom
    # Exact at the ends (p = 0 or 1) and guarded against rounding just outside [0, 1].
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high



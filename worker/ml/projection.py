"""2-D map of a whole pool of embeddings, fast enough for 100,000+ items on two CPU cores.

Method — *landmark t-SNE*:

1. rows are L2-normalised (the geometry the head uses), then reduced to 50 dimensions by PCA
   fitted on at most 20,000 rows (randomised SVD; the rest are only transformed, in blocks);
2. t-SNE (scikit-learn, Barnes-Hut) lays out at most ``landmarks`` (default 3,000) rows drawn
   uniformly at random — every row when the pool is that small;
3. every other row is placed at the distance-weighted mean of its ``k`` nearest landmarks in the
   50-D PCA space (an out-of-sample extension in the spirit of landmark MDS / kNN regression).

Why: t-SNE keeps local neighbourhoods — what a person looking for clusters, outliers and
mislabelled look-alikes needs — far better than a linear 2-D PCA, but exact or Barnes-Hut t-SNE
on 100,000 points takes many minutes on two cores, and scikit-learn has no UMAP. The landmark
layout costs about the same whatever the pool size (t-SNE on 3,000 points), and placing 100,000
rows is one blocked nearest-neighbour search. Measured on this project's 2-core machine (busy
with other jobs at the time) by benchmarks/map_100k.py: 100,000 x 1280 float16 rows in 21 s.
UMAP would need numba + pynndescent, and openTSNE's FFT t-SNE another compiled dependency:
neither is needed for a browsing map.

``method="pca"`` gives the plain linear projection in a second or two (a fallback, and what a
caller can show while the t-SNE map is being computed). No Django here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

__all__ = ["Projection", "project"]

PCA_DIMS = 50
PCA_FIT_ROWS = 20_000
DEFAULT_LANDMARKS = 3_000
#: t-SNE iterations (scikit-learn's default is 1000): the layout of a few thousand landmarks
#: has settled by then, and t-SNE is nearly all of the cost.
TSNE_ITERATIONS = 600
NEIGHBOURS = 10
BLOCK = 8_192


@dataclass
class Projection:
    xy: np.ndarray  # float32 (n, 2)
    method: str
    seconds: float
    landmarks: int


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def _pca(X: np.ndarray, dims: int, rng: np.random.Generator) -> np.ndarray:
    """PCA to `dims` components, fitted on a random subsample, applied block by block."""
    from sklearn.decomposition import PCA

    n, d = X.shape
    dims = max(1, min(dims, d, n))
    fit_rows = rng.choice(n, size=min(n, PCA_FIT_ROWS), replace=False)
    fit_rows.sort()
    sample = _unit(X[fit_rows])
    if dims >= min(sample.shape):
        dims = max(1, min(sample.shape) - 1) if min(sample.shape) > 1 else 1
    pca = PCA(n_components=dims, svd_solver="randomized" if n > 500 else "full",
              random_state=int(rng.integers(2**31 - 1)))
    pca.fit(sample)
    out = np.empty((n, dims), dtype=np.float32)
    for s in range(0, n, BLOCK):
        out[s : s + BLOCK] = pca.transform(_unit(X[s : s + BLOCK]))
    return out


def _tsne(Z: np.ndarray, seed: int) -> np.ndarray:
    """Barnes-Hut t-SNE on one OpenMP thread.

    One thread on purpose: measured here, scikit-learn's OpenMP gradient loop took ~26 s for any
    size from 25 to 1,000 points whenever the two cores were also busy with other work (threads
    spin-waiting for each other), against 0.05-5 s single-threaded.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = len(Z)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
    tsne = TSNE(
        n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
        random_state=seed, n_jobs=1, max_iter=TSNE_ITERATIONS,
    )
    with threadpool_limits(limits=1, user_api="openmp"):
        return tsne.fit_transform(Z).astype(np.float32)


def _place(Z: np.ndarray, Z_land: np.ndarray, xy_land: np.ndarray, k: int,
           rng: np.random.Generator) -> np.ndarray:
    """Place rows among their k nearest landmarks (blocked, O(block * L) memory).

    Weights fall with the 8th power of the distance, so a row lands next to its closest
    landmarks rather than at the centre of mass of all k (a plain mean piles most of a big pool
    onto cluster centres); a small jitter, a quarter of the nearest landmark's spacing on the
    map, keeps rows that share landmarks from stacking on one pixel.
    """
    k = min(k, len(Z_land))
    land_sq = (Z_land**2).sum(axis=1)
    # Spacing of each landmark on the map: distance to its nearest other landmark.
    spacing = np.empty(len(xy_land), dtype=np.float32)
    for s in range(0, len(xy_land), BLOCK):
        d = ((xy_land[s : s + BLOCK, None, :] - xy_land[None, :, :]) ** 2).sum(-1)
        d[np.arange(len(d)), np.arange(s, s + len(d))] = np.inf
        spacing[s : s + BLOCK] = np.sqrt(d.min(axis=1))
    out = np.empty((len(Z), 2), dtype=np.float32)
    for s in range(0, len(Z), BLOCK):
        block = Z[s : s + BLOCK]
        d2 = (block**2).sum(axis=1)[:, None] - 2.0 * block @ Z_land.T + land_sq[None, :]
        np.maximum(d2, 0.0, out=d2)
        nn = np.argpartition(d2, k - 1, axis=1)[:, :k]
        d2k = np.take_along_axis(d2, nn, axis=1)
        rel = (d2k + 1e-9) / (d2k.min(axis=1, keepdims=True) + 1e-9)  # >= 1
        w = rel**-4.0  # (d / d_min)^-8
        w /= w.sum(axis=1, keepdims=True)
        nearest = nn[np.arange(len(nn)), d2k.argmin(axis=1)]
        jitter = rng.normal(size=(len(block), 2)) * (0.25 * spacing[nearest])[:, None]
        out[s : s + BLOCK] = (w[:, :, None] * xy_land[nn]).sum(axis=1) + jitter
    return out


def project(
    X: np.ndarray,
    *,
    method: str = "tsne",
    landmarks: int = DEFAULT_LANDMARKS,
    random_state: int = 0,
) -> Projection:
    """2-D coordinates for every row of ``X`` (any float dtype, e.g. a float16 memmap).

    ``method``: ``"tsne"`` (landmark t-SNE, see the module docstring) or ``"pca"``.
    """
    started = time.monotonic()
    n = len(X)
    if n == 0:
        return Projection(np.zeros((0, 2), np.float32), method, 0.0, 0)
    if n < 4:
        # Too few for any layout: spread them on a line, deterministic.
        xy = np.stack([np.arange(n, dtype=np.float32), np.zeros(n, np.float32)], axis=1)
        return Projection(xy, "trivial", time.monotonic() - started, n)
    rng = np.random.default_rng(random_state)
    if method == "pca":
        xy = _pca(X, 2, rng)
        if xy.shape[1] < 2:
            xy = np.concatenate([xy, np.zeros((n, 1), np.float32)], axis=1)
        return Projection(xy.astype(np.float32), "pca", time.monotonic() - started, n)
    if method != "tsne":
        raise ValueError(f"unknown projection method {method!r}; use 'tsne' or 'pca'")
    Z = _pca(X, PCA_DIMS, rng)
    if n <= landmarks:
        xy = _tsne(Z, random_state)
        return Projection(xy, "tsne", time.monotonic() - started, n)
    land = np.sort(rng.choice(n, size=landmarks, replace=False))
    xy_land = _tsne(Z[land], random_state)
    xy = _place(Z, Z[land], xy_land, NEIGHBOURS, rng)
    xy[land] = xy_land  # landmarks keep their exact t-SNE position
    return Projection(xy, "landmark-tsne", time.monotonic() - started, int(landmarks))

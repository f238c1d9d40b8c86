"""Fusing ranked lists from several retrievers.

Two methods:

* ``rrf`` - reciprocal rank fusion: ``sum_m w_m / (k + rank_m)``, rank from 1. Uses ranks
  only, so it needs no score calibration between retrievers.
* ``zscore`` - sum of per-query z-scores of each list (missing items get the list's
  floor). Best on the SciFact *train* split (see bench/README.md); selectable with WB_FUSION.
* ``weighted`` - convex combination of per-query normalised scores. Each list's scores are
  rescaled so its best hit is 1 and the worst kept hit 0 (min-max over the top-N list); an
  item missing from a list gets 0 from it. Unlike RRF it keeps the *margins* a retriever
  is confident about.

Both are deterministic: ties break by first appearance across the lists in input order.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)

RRF_K = 60  # the constant from Cormack et al. (2009); deliberately not tuned per data set


def rrf(
    rankings: Sequence[Sequence[K]], *, weights: Sequence[float] | None = None, k: int = RRF_K
) -> list[tuple[K, float]]:
    """Reciprocal rank fusion of ranked id lists, best first."""
    weights = weights or [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    scores: dict[K, float] = {}
    for ranking, w in zip(rankings, weights):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + w / (k + rank)
    return _sorted(scores)


def minmax(scores: Mapping[K, float]) -> dict[K, float]:
    """Rescale scores to [0, 1]; all-equal scores map to 1."""
    if not scores:
        return {}
    hi, lo = max(scores.values()), min(scores.values())
    span = hi - lo
    return {key: ((v - lo) / span if span > 0 else 1.0) for key, v in scores.items()}


def weighted(
    score_lists: Sequence[Mapping[K, float]], *, weights: Sequence[float] | None = None
) -> list[tuple[K, float]]:
    """Convex combination of min-max normalised scores, best first."""
    weights = weights or [1.0 / len(score_lists)] * len(score_lists)
    if len(weights) != len(score_lists):
        raise ValueError("one weight per score list")
    total = sum(weights) or 1.0
    fused: dict[K, float] = {}
    for scores, w in zip(score_lists, weights):
        for item, v in minmax(scores).items():
            fused[item] = fused.get(item, 0.0) + (w / total) * v
    return _sorted(fused)


def _sorted(scores: dict[K, float]) -> list[tuple[K, float]]:
    # dicts keep insertion order, so a stable sort breaks ties by first appearance
    return sorted(scores.items(), key=lambda kv: -kv[1])


def zscore(scores: Mapping[K, float]) -> dict[K, float]:
    """Standardise scores to mean 0 and standard deviation 1 (all-equal scores map to 0)."""
    if not scores:
        return {}
    z = _zscores(np.fromiter(scores.values(), dtype=np.float64, count=len(scores)))
    return dict(zip(scores, z.tolist()))


def _zscores(values: np.ndarray) -> np.ndarray:
    sd = float(values.std())
    return (values - values.mean()) / sd if sd > 0 else np.zeros_like(values)


def zscore_sum(
    score_lists: Sequence[Mapping[K, float]], *, weights: Sequence[float] | None = None
) -> list[tuple[K, float]]:
    """Weighted sum of per-list z-scores, best first.

    An item missing from a list gets that list's lowest z-score: it ranked below everything
    the list returned. Unlike min-max, one extreme score does not squash the rest of a list.
    """
    weights = weights or [1.0 / len(score_lists)] * len(score_lists)
    if len(weights) != len(score_lists):
        raise ValueError("one weight per score list")
    # Arrays instead of per-key dict lookups: a hybrid query fuses ~2,000 documents, and the
    # dict version cost ~3 ms of a ~25 ms query.
    position: dict[K, int] = {}
    for scores in score_lists:
        for key in scores:
            position.setdefault(key, len(position))
    fused = np.zeros(len(position), dtype=np.float64)
    for scores, w in zip(score_lists, weights):
        if not scores:
            continue
        z = _zscores(np.fromiter(scores.values(), dtype=np.float64, count=len(scores)))
        column = np.full(len(position), w * float(z.min()))
        column[np.fromiter((position[k] for k in scores), dtype=np.int64, count=len(scores))] = w * z
        fused += column
    keys = list(position)
    order = np.argsort(-fused, kind="stable")  # stable: ties keep first appearance
    return [(keys[i], float(fused[i])) for i in order.tolist()]

"""Fusion properties (Hypothesis) and a reference check of BM25 scoring."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from workbench.retrieval import fusion
from workbench.retrieval.sparse import SparseIndex, tokenize

ids = st.lists(st.integers(0, 40), unique=True, max_size=25)
# integer-valued scores: rescaling stays exact, so ties cannot appear or vanish by rounding
scored = st.dictionaries(st.integers(0, 40), st.integers(-5000, 5000).map(lambda v: v / 100), max_size=25)


@given(ids, ids)
def test_rrf_is_symmetric_and_complete(a: list[int], b: list[int]) -> None:
    ab = dict(fusion.rrf([a, b]))
    ba = dict(fusion.rrf([b, a]))
    assert set(ab) == set(a) | set(b)
    for key in ab:
        assert math.isclose(ab[key], ba[key])


@given(ids, ids)
def test_rrf_item_first_in_both_lists_wins(a: list[int], b: list[int]) -> None:
    if a and b and a[0] == b[0]:
        assert fusion.rrf([a, b])[0][0] == a[0]


@given(ids)
def test_rrf_of_one_list_keeps_its_order(a: list[int]) -> None:
    assert [k for k, _ in fusion.rrf([a])] == a


@given(ids, ids, st.integers(0, 40))
def test_rrf_promoting_an_item_never_lowers_it(a: list[int], b: list[int], item: int) -> None:
    if item not in a or a.index(item) == 0:
        return
    promoted = a.copy()
    i = promoted.index(item)
    promoted[i - 1], promoted[i] = promoted[i], promoted[i - 1]
    assert dict(fusion.rrf([promoted, b]))[item] > dict(fusion.rrf([a, b]))[item]


@given(scored, scored)
def test_weighted_scores_are_bounded_and_sorted(a: dict[int, float], b: dict[int, float]) -> None:
    fused = fusion.weighted([a, b])
    assert {k for k, _ in fused} == set(a) | set(b)
    values = [v for _, v in fused]
    assert all(-1e-9 <= v <= 1 + 1e-9 for v in values)
    assert values == sorted(values, reverse=True)


@given(scored)
def test_weighted_is_invariant_to_affine_rescaling(a: dict[int, float]) -> None:
    rescaled = {k: 3.0 * v + 7.0 for k, v in a.items()}
    assert [k for k, _ in fusion.weighted([a])] == [k for k, _ in fusion.weighted([rescaled])]


def test_weighted_keeps_margins_that_rrf_drops() -> None:
    # dense is very sure about x; BM25 mildly prefers y over x
    dense = {"x": 0.95, "y": 0.20, "z": 0.19}
    sparse = {"y": 10.0, "x": 9.5, "z": 1.0}
    assert fusion.weighted([dense, sparse])[0][0] == "x"


def test_bm25_matches_reference_formula() -> None:
    docs = [
        "heart attack aspirin",
        "aspirin aspirin headache relief",
        "statins and heart disease",
        "exercise",
    ]
    toks = tokenize(docs)
    index = SparseIndex(toks)
    rows, scores = index.search("aspirin", 4)
    # Lucene BM25 (no (k1 + 1) factor since Lucene 8): idf = ln(1 + (N - df + 0.5) / (df + 0.5)), k1=1.2, b=0.75
    n, df = len(toks), sum("aspirin" in t for t in toks)
    avgdl = sum(len(t) for t in toks) / n
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    expected = {}
    for i, t in enumerate(toks):
        tf = t.count("aspirin")
        if tf:
            expected[i] = idf * tf / (tf + 1.2 * (1 - 0.75 + 0.75 * len(t) / avgdl))
    got = dict(zip(rows.tolist(), scores.tolist()))
    assert set(got) == set(expected)
    for i in expected:
        assert math.isclose(got[i], expected[i], rel_tol=1e-4)


@given(scored, scored)
def test_zscore_sum_is_complete_sorted_and_scale_free(a: dict[int, float], b: dict[int, float]) -> None:
    fused = fusion.zscore_sum([a, b])
    assert {k for k, _ in fused} == set(a) | set(b)
    values = [v for _, v in fused]
    assert values == sorted(values, reverse=True)
    rescaled = fusion.zscore_sum([{k: 10 * v - 3 for k, v in a.items()}, b])
    assert [round(v, 9) for _, v in rescaled] == [round(v, 9) for _, v in fused]


def test_zscore_item_top_in_both_lists_wins() -> None:
    dense = {"a": 0.9, "b": 0.5, "c": 0.4}
    sparse = {"a": 12.0, "c": 8.0, "b": 1.0}
    assert fusion.zscore_sum([dense, sparse])[0][0] == "a"


@given(scored, scored, st.floats(min_value=0.05, max_value=0.95))
def test_zscore_sum_matches_the_definition(a: dict[int, float], b: dict[int, float], w: float) -> None:
    # The array implementation against the definition written out per key.
    def z(s: dict[int, float]) -> dict[int, float]:
        if not s:
            return {}
        mean = sum(s.values()) / len(s)
        sd = (sum((v - mean) ** 2 for v in s.values()) / len(s)) ** 0.5
        return {k: (v - mean) / sd if sd > 0 else 0.0 for k, v in s.items()}

    za, zb = z(a), z(b)
    fa, fb = min(za.values(), default=0.0), min(zb.values(), default=0.0)
    expected = {k: w * za.get(k, fa) + (1 - w) * zb.get(k, fb) for k in set(a) | set(b)}
    fused = fusion.zscore_sum([a, b], weights=[w, 1 - w])
    assert len(fused) == len(expected)
    for key, value in fused:
        assert math.isclose(value, expected[key], rel_tol=1e-9, abs_tol=1e-9)

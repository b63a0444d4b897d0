from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from knowledge_matrix.matrix import Entry
from knowledge_matrix.retrieval import (
    Calibration,
    Hit,
    RankedEntry,
    Rival,
    Thresholds,
    background_stats,
    decide,
    fused_scores,
    margins,
    message_words,
    model_agreement,
    rank_entries,
    reciprocal_rank_fusion,
    rivals,
    standardized_query,
)

THRESHOLDS = Thresholds(answer=0.6, suggest=0.2, max_candidates=3)


def hit(entry_id: str, score: float) -> Hit:
    return Hit(entry=Entry(entry_id, ("¿?",), "r"), score=score, fused=0.0, margin=0.0, matched_question="¿?")


def test_a_confident_top_hit_is_answered_alone() -> None:
    verdict = decide([hit("a", 0.9), hit("b", 0.5)], THRESHOLDS)
    assert verdict.kind == "answer" and [h.entry_id for h in verdict.hits] == ["a"]
    assert verdict.hit is not None and verdict.hit.entry_id == "a" and verdict.candidates == ()


def test_the_ambiguous_band_offers_up_to_three_candidates_above_suggest() -> None:
    verdict = decide([hit("a", 0.5), hit("b", 0.3), hit("c", 0.25), hit("d", 0.24)], THRESHOLDS)
    assert verdict.kind == "ambiguous"
    assert [h.entry_id for h in verdict.candidates] == ["a", "b", "c"]
    only_one = decide([hit("a", 0.4), hit("b", 0.1)], THRESHOLDS)
    assert [h.entry_id for h in only_one.candidates] == ["a"]


def test_below_suggest_or_nothing_is_no_match() -> None:
    assert decide([hit("a", 0.1)], THRESHOLDS).kind == "no_match"
    assert decide([], THRESHOLDS).kind == "no_match"
    assert decide([], THRESHOLDS).hit is None


def test_thresholds_are_boundaries_inclusive() -> None:
    assert decide([hit("a", 0.6)], THRESHOLDS).kind == "answer"
    assert decide([hit("a", 0.2)], THRESHOLDS).kind == "ambiguous"


def close(entry_id: str, score: float, fused: float, margin: float) -> Hit:
    return Hit(entry=Entry(entry_id, ("¿?",), "r"), score=score, fused=fused, margin=margin, matched_question="¿?")


def test_two_entries_closer_than_the_margin_are_asked_about_not_guessed() -> None:
    thresholds = Thresholds(answer=0.6, suggest=0.2, max_candidates=3, margin=0.3)
    hits = [close("importar", 0.9, 2.0, 0.1), close("exportar", 0.1, 1.9, -0.1), close("otro", 0.05, 1.0, -1.0)]
    verdict = decide(hits, thresholds)
    # the second is offered although its own score is under `suggest`: it is as close as the first
    assert verdict.kind == "ambiguous" and [h.entry_id for h in verdict.candidates] == ["importar", "exportar"]
    clear = [close("importar", 0.9, 2.0, 0.5), close("exportar", 0.1, 1.5, -0.5)]
    assert decide(clear, thresholds).kind == "answer"
    assert decide(hits[:1], thresholds).kind == "answer"  # nothing to be confused with
    assert decide(hits, THRESHOLDS).kind == "answer"  # margin 0: the check is off


def test_thresholds_keep_their_margin_and_older_manifests_have_none() -> None:
    thresholds = Thresholds(answer=0.7, suggest=0.2, margin=0.15)
    assert Thresholds.from_dict(thresholds.to_dict()) == thresholds
    assert Thresholds.from_dict({"answer": 0.6, "suggest": 0.2}).margin == 0.0
    with pytest.raises(ValueError):
        Thresholds(answer=0.6, suggest=0.2, margin=-0.1)


@pytest.mark.parametrize(("answer", "suggest", "count"), [(0.5, 0.6, 3), (1.5, 0.1, 3), (0.5, -0.1, 3), (0.5, 0.1, 0)])
def test_inconsistent_thresholds_are_refused(answer: float, suggest: float, count: int) -> None:
    with pytest.raises(ValueError):
        Thresholds(answer=answer, suggest=suggest, max_candidates=count)


@given(
    st.lists(st.floats(min_value=0, max_value=1), max_size=8).map(lambda s: sorted(s, reverse=True)),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=1),
    st.integers(min_value=1, max_value=5),
)
def test_decide_properties(scores: list[float], a: float, b: float, count: int) -> None:
    thresholds = Thresholds(answer=max(a, b), suggest=min(a, b), max_candidates=count)
    hits = [hit(f"e{i}", s) for i, s in enumerate(scores)]
    verdict = decide(hits, thresholds)
    if verdict.kind == "answer":
        assert verdict.hits == (hits[0],) and hits[0].score >= thresholds.answer
    elif verdict.kind == "ambiguous":
        assert 1 <= len(verdict.hits) <= count
        assert all(thresholds.suggest <= h.score < thresholds.answer or h is not hits[0] for h in verdict.hits)
        assert list(verdict.hits) == hits[: len(verdict.hits)]
    else:
        assert not hits or hits[0].score < thresholds.suggest or hits[0].score < thresholds.answer


def test_calibration_grows_with_each_feature_and_stays_a_probability() -> None:
    calibration = Calibration(intercept=-4.0, z=1.0, margin=1.5, cosine=(2.0,))
    base = calibration.confidence(2.0, 0.5, [0.4])
    assert 0.0 < base < 1.0
    assert calibration.confidence(3.0, 0.5, [0.4]) > base
    assert calibration.confidence(2.0, 1.5, [0.4]) > base
    assert calibration.confidence(2.0, 0.5, [0.8]) > base
    assert calibration.confidence(1e9, 1e9, [1.0]) == pytest.approx(1.0)
    # a calibration for another number of models ignores the cosines instead of failing
    assert calibration.confidence(2.0, 0.5, [0.4, 0.3]) == Calibration(-4.0, 1.0, 1.5).confidence(2.0, 0.5, [])
    assert Calibration.from_dict(calibration.to_dict()) == calibration


def test_fused_scores_standardize_each_model_before_mixing() -> None:
    background = np.array([[0.80, 0.1], [0.82, 0.3], [0.84, 0.5]], dtype=np.float32)
    stats = background_stats(background)
    rows = np.array([[0.84, 0.1], [0.80, 0.5]], dtype=np.float32)
    fused = fused_scores(rows, stats, [0.5, 0.5])
    # e5-like compressed scale and USE-like spread scale count equally once standardized
    assert fused[0] == pytest.approx(fused[1], abs=1e-4)
    assert fused_scores(rows, stats, [0.9, 0.1])[0] > fused_scores(rows, stats, [0.9, 0.1])[1]


def test_background_stats_never_divide_by_zero() -> None:
    stats = background_stats(np.ones((4, 2), dtype=np.float32))
    assert np.all(stats.std > 0)
    assert background_stats(np.zeros((0, 2), dtype=np.float32)).std.tolist() == [1.0, 1.0]


def test_rank_entries_keeps_each_entrys_best_row_and_margins() -> None:
    rows = [10, 11, 12, 13]
    owners = [0, 0, 1, 2]
    fused = np.array([0.5, 2.0, 1.0, 1.5], dtype=np.float32)
    cosines = np.array([[0.1], [0.9], [0.5], [0.7]], dtype=np.float32)
    ranked = rank_entries(rows, owners, fused, cosines)
    assert [(r.entry_index, r.row) for r in ranked] == [(0, 11), (2, 13), (1, 12)]
    assert ranked[0].cosines == pytest.approx((0.9,))
    assert margins(ranked) == pytest.approx([0.5, -0.5, -1.0])
    assert margins([]) == []


def test_margins_are_each_entrys_lead_over_the_best_other_in_any_order() -> None:
    ranked = rank_entries([0, 1, 2], [0, 1, 2], np.array([2.0, 1.5, 1.0], dtype=np.float32), np.zeros((3, 1)))
    assert margins([ranked[1], ranked[0], ranked[2]]) == pytest.approx([-0.5, 0.5, -1.0])


def test_rank_fusion_lets_a_lexical_match_overtake_a_close_dense_one() -> None:
    dense = rank_entries([0, 1, 2], [0, 1, 2], np.array([2.0, 1.9, 1.0], dtype=np.float32), np.zeros((3, 1)))
    fused = reciprocal_rank_fusion(dense, {1: 0.8, 2: 0.5, 0: 0.0}, lexical_weight=1.0, k=10)
    assert [r.entry_index for r in fused] == [1, 2, 0]
    # agreeing channels keep the order; a tie of ranks goes to the better dense score
    assert [r.entry_index for r in reciprocal_rank_fusion(dense, {0: 0.9, 1: 0.5}, 1.0, 10)] == [0, 1, 2]
    assert [r.entry_index for r in reciprocal_rank_fusion(dense, {1: 0.9, 0: 0.5}, 1.0, 10)] == [0, 1, 2]
    # a weak lexical channel only breaks ties; no lexical match leaves the dense order
    assert [r.entry_index for r in reciprocal_rank_fusion(dense, {1: 0.8}, 0.01, 10)] == [0, 1, 2]
    assert [r.entry_index for r in reciprocal_rank_fusion(dense, {}, 1.0, 10)] == [0, 1, 2]


def test_agreement_is_the_share_of_models_whose_own_best_row_is_the_entry() -> None:
    cosines = np.array([[0.9, 0.2], [0.5, 0.8], [0.1, 0.1]], dtype=np.float32)
    owners = [0, 1, 2]
    ranked = rank_entries([0, 1, 2], owners, np.array([1.0, 0.9, 0.0], dtype=np.float32), cosines)
    stats = background_stats(cosines)
    shares = {r.entry_index: r.agreement for r in model_agreement(ranked, owners, cosines, stats)}
    assert shares == {0: 0.5, 1: 0.5, 2: 0.0}
    calibration = Calibration(intercept=0.0, z=0.0, margin=0.0, agreement=2.0)
    assert calibration.confidence(0.0, 0.0, [], None, 1.0) > calibration.confidence(0.0, 0.0, [], None, 0.0)
    assert calibration.confidence(0.0, 0.0, [], None, None) == 0.5
    assert Calibration.from_dict(calibration.to_dict()) == calibration
    assert Calibration.from_dict({"intercept": 0, "z": 1, "margin": 0}).agreement == 0.0


@given(st.floats(min_value=0.05, max_value=0.95), st.integers(min_value=0, max_value=2**31))
def test_the_standardized_query_ranks_rows_by_the_fused_score(share: float, seed: int) -> None:
    from knowledge_matrix.embedders import normalize_rows

    rng = np.random.default_rng(seed)
    blocks = [(0, 6, share), (6, 10, 1.0 - share)]

    def joint(count: int) -> np.ndarray:
        a, b = normalize_rows(rng.normal(size=(count, 6))), normalize_rows(rng.normal(size=(count, 4)))
        return np.hstack([a * np.sqrt(share), b * np.sqrt(1.0 - share)]).astype(np.float32)

    rows, background, query = joint(12), joint(8), joint(1)[0]

    def cosines(vectors: np.ndarray) -> np.ndarray:
        return np.stack([(vectors[:, s:e] @ query[s:e]) / w for s, e, w in blocks], axis=1).astype(np.float32)

    stats = background_stats(cosines(background))
    scaled, offset = standardized_query(query, blocks, stats)
    fused = fused_scores(cosines(rows), stats, [w for _, _, w in blocks])
    assert np.allclose(rows @ scaled - offset, fused, atol=1e-3)


def test_each_entrys_rival_is_the_best_other_entry() -> None:
    """The best entry is up against the second, every other entry against the best (as `margins` measures);
    the lead is per model, the rival's agreement is its own. Fails when an entry is compared with itself or with
    the wrong one."""
    ranked = [RankedEntry(0, 0, 1.0, (0.80, 0.40), 0.5), RankedEntry(1, 1, 2.0, (0.90, 0.70), 1.0),
              RankedEntry(2, 2, 0.5, (0.70, 0.10), 0.0)]
    found = rivals(ranked, words=3, unknown_words=0.5)
    assert {r.unknown_words for r in found} == {0.5}
    assert [r.agreement for r in found] == [1.0, 0.5, 1.0]
    assert found[0].cosine_lead == pytest.approx((-0.10, -0.30))
    assert found[1].cosine_lead == pytest.approx((0.10, 0.30))  # the best, against the second
    assert found[2].cosine_lead == pytest.approx((-0.20, -0.60))
    assert [r.log_words for r in found] == pytest.approx([np.log1p(3)] * 3)
    # alone: nothing to be up against
    (lone,) = rivals(ranked[:1], words=0)
    assert lone == Rival(0.0, 0.0, (0.0, 0.0), 0.0)
    assert rivals([], words=2) == []


def test_words_are_runs_of_letters_or_digits() -> None:
    assert message_words("¿Cuánto cuesta el plan básico?") == 5
    assert message_words("hola!!") == 1
    assert message_words("  ¿?  ") == 0
    assert message_words("wifi 5g x2") == 3


def test_the_rival_terms_weigh_in_and_older_calibrations_ignore_them() -> None:
    """A short message, a rival the models also like and a small cosine lead lower the score; a calibration
    written before the terms existed (a manifest without them) scores exactly as it did. Fails when the terms
    are ignored, or leak into an old calibration."""
    calibration = Calibration(intercept=0.0, z=1.0, margin=1.0, words=0.5, rival_agreement=-1.0,
                              cosine_lead=(4.0, 2.0))
    strong = Rival(np.log1p(8), 0.0, (0.10, 0.20))
    weak = Rival(np.log1p(1), 1.0, (0.01, 0.02))
    assert calibration.confidence(1.0, 0.2, [], None, None, strong) > calibration.confidence(
        1.0, 0.2, [], None, None, weak)
    # per-model leads of another number of models are ignored, not a failure
    odd = Rival(0.0, 0.0, (1.0,))
    assert calibration.confidence(1.0, 0.2, [], None, None, odd) == calibration.confidence(
        1.0, 0.2, [], None, None, Rival(0.0, 0.0, ()))
    # words the matrix never uses lower the score when their coefficient says so
    wary = Calibration(intercept=0.0, z=1.0, margin=1.0, unknown_words=-3.0)
    assert wary.confidence(1.0, 0.2, [], None, None, Rival(1.0, 0.0, (), 1.0)) < wary.confidence(
        1.0, 0.2, [], None, None, Rival(1.0, 0.0, (), 0.0))
    assert Calibration.from_dict(wary.to_dict()) == wary
    assert Calibration.from_dict(calibration.to_dict()) == calibration
    old = Calibration.from_dict({"intercept": -1.0, "z": 1.0, "margin": 0.5, "cosine": [2.0], "agreement": 1.0})
    assert (old.words, old.rival_agreement, old.cosine_lead, old.unknown_words) == (0.0, 0.0, (), 0.0)
    assert old.confidence(1.0, 0.3, [0.8], None, 1.0, weak) == old.confidence(1.0, 0.3, [0.8], None, 1.0)

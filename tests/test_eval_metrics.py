"""The evaluation metrics on hand-made score sets whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fr_gateway.evaluation.metrics import (
    MatedSearch,
    det,
    fnir,
    fnir_at_fpir,
    hit_rate,
    roc,
    tar_at_far,
    ten_fold_accuracy,
    threshold_for,
)

IMPOSTOR = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
GENUINE = [0.5, 0.85, 0.95, 0.99]


def test_tar_at_far_refuses_just_enough_impostors():
    point = tar_at_far(GENUINE, IMPOSTOR, 0.1)  # one false accept of ten allowed: 0.9 in, 0.8 out
    assert 0.8 < point.threshold < 0.8 + 1e-9
    assert point.achieved == pytest.approx(0.1) and point.rate == pytest.approx(0.75)
    half = tar_at_far(GENUINE, IMPOSTOR, 0.5)  # 0.5 to 0.9 in, 0.4 out
    assert 0.4 < half.threshold <= 0.5 and half.achieved == pytest.approx(0.5) and half.rate == 1.0
    assert (point.count, point.needed) == (10, 10)


def test_a_target_below_what_the_data_can_show_has_no_value():
    point = tar_at_far(GENUINE, IMPOSTOR, 1e-2)
    assert not point.shown and point.rate is None and (point.count, point.needed) == (10, 100)
    assert threshold_for(IMPOSTOR, 1e-4) is None


def test_ties_with_the_first_refused_impostor_are_refused_too():
    threshold = threshold_for([0.5, 0.5, 0.5, 0.1], 0.25)  # one of four may pass, but three share 0.5
    assert threshold > 0.5
    assert tar_at_far([0.6], [0.5, 0.5, 0.5, 0.1], 0.25).achieved == 0.0


def test_roc_runs_from_the_highest_threshold_down_and_ends_accepting_everything():
    points = roc(GENUINE, IMPOSTOR)
    assert points[0] == (0.99, 0.0, 0.25)
    assert points[-1] == (0.0, 1.0, 1.0)
    fars, tars = [p[1] for p in points], [p[2] for p in points]
    assert fars == sorted(fars) and tars == sorted(tars)
    assert (0.5, 0.5, 1.0) in points


MATED = [MatedSearch(1, 0.9), MatedSearch(1, 0.6), MatedSearch(2, 0.7), MatedSearch(None, None)]
NON_MATED = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.65]


def test_det_pairs_each_threshold_with_fpir_and_fnir():
    curve = {threshold: (fpir, miss) for threshold, fpir, miss in det(MATED, NON_MATED)}
    assert curve[0.9] == (0.0, 0.75)  # only the 0.9 mate is found
    assert curve[0.65] == (0.1, 0.75)  # the top non-mated score gets in
    assert curve[0.6] == (0.1, 0.5)
    assert curve[0.05] == (1.0, 0.5)  # the rank-2 mate and the missing one never count
    assert list(curve) == sorted(curve, reverse=True)


def test_identification_rates():
    assert hit_rate(MATED, 1) == 0.5 and hit_rate(MATED, 5) == 0.75
    assert fnir(MATED, 0.5) == 0.5  # the rank-2 mate and the missing one are misses at any threshold
    assert fnir(MATED, 0.8) == 0.75
    point = fnir_at_fpir(MATED, NON_MATED, 0.1)  # 0.65 may pass; 0.45 must not
    assert 0.45 < point.threshold < 0.46 and point.achieved == pytest.approx(0.1)
    assert point.rate == pytest.approx(0.5)
    wider = fnir_at_fpir(MATED, NON_MATED + [float("-inf")] * 20, 0.05)  # 30 searches: still one may pass
    assert 0.45 < wider.threshold < 0.46 and wider.achieved == pytest.approx(1 / 30)
    assert not fnir_at_fpir(MATED, NON_MATED, 0.003).shown


def test_ten_fold_accuracy_on_separable_and_on_mixed_folds():
    rng = np.random.default_rng(1)
    same = np.tile([True, False], 50)
    scores = np.where(same, 0.7, 0.2) + rng.uniform(-0.1, 0.1, 100)
    folds = np.repeat(np.arange(10), 10)
    mean, std, per_fold = ten_fold_accuracy(scores, same, folds)
    assert (mean, std, len(per_fold)) == (1.0, 0.0, 10)
    flipped = same.copy()
    flipped[0] = not flipped[0]  # one pair in fold 0 is labelled wrong: that fold scores 9/10
    mean, _, per_fold = ten_fold_accuracy(scores, flipped, folds)
    assert per_fold[0] == pytest.approx(0.9) and mean == pytest.approx(0.99)

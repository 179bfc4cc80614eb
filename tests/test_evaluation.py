"""Evaluation metrics and the eval-surprise pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from edge_jepa.evaluation import PairScores, auroc, evaluate_surprise, spearman, summarize


def test_auroc_and_spearman_known_values():
    assert auroc([0, 1, 2], [3, 4]) == 1.0
    assert auroc([3, 4], [0, 1]) == 0.0
    assert auroc([1, 2], [1, 2]) == 0.5
    assert auroc([0.1, 0.4, 0.35, 0.8], [0.35, 0.9]) == pytest.approx(5.5 / 8)  # one tie counts half
    assert spearman(np.arange(10), np.arange(10) ** 3) == pytest.approx(1.0)
    assert spearman(np.arange(10), -np.arange(10.0)) == pytest.approx(-1.0)


def test_summarize_counts_pairs_and_peaks():
    nan = np.nan
    pairs = [PairScores("vanish", 5, np.array([nan, nan, 1, 1, 1, 1, 1, 1]), np.array([nan, nan, 1, 1, 1, 1, 3, 1])),
             PairScores("teleport", 4, np.array([nan, nan, 2, 2, 2, 2, 2, 2]), np.array([nan, nan, 1, 1, 1, 1, 1, 1]))]
    s = summarize(pairs, tolerance=2)
    assert s["overall"]["pairwise"] == 0.5
    assert s["per_type"]["vanish"]["pairwise"] == 1.0 and s["per_type"]["vanish"]["median_peak_offset"] == 1
    assert s["per_type"]["vanish"]["peak_within_tolerance"] == 1.0


def test_evaluate_surprise_runs_on_any_model(tiny_model):
    report = evaluate_surprise(tiny_model, pairs_per_type=1)
    assert report["overall"]["pairs"] == 7 and set(report["per_type"]) >= {"vanish", "teleport", "appear"}
    assert 0.0 <= report["overall"]["auroc"] <= 1.0

"""Evaluation metrics and the eval-surprise pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_jepa.cli import app
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
    assert s["overall"]["pairwise"] == 0.5 and s["overall"]["pairwise_ties"] == 0.0
    tie = PairScores("reverse", 6, np.array([nan, nan, 4, 1, 1, 1, 1, 1]), np.array([nan, nan, 4, 1, 1, 1, 2, 1]))
    s3 = summarize([*pairs, tie], tolerance=2)["overall"]  # the peak before the violation is shared: a tie
    assert s3["pairwise"] == pytest.approx(1 / 3) and s3["pairwise_ties"] == pytest.approx(1 / 3)
    assert s["per_type"]["vanish"]["pairwise"] == 1.0 and s["per_type"]["vanish"]["median_peak_offset"] == 1
    assert s["per_type"]["vanish"]["peak_within_tolerance"] == 1.0


def test_evaluate_surprise_runs_on_any_model(tiny_model):
    report = evaluate_surprise(tiny_model, pairs_per_type=1)
    assert report["overall"]["pairs"] == 7 and set(report["per_type"]) >= {"vanish", "teleport", "appear"}
    assert 0.0 <= report["overall"]["auroc"] <= 1.0


def test_pixel_baselines_score_change_and_linear_motion():
    from edge_jepa.evaluation import pixel_baseline_scores

    frames = np.full((10, 16, 16, 3), 100, np.uint8)
    frames[7:] = 200  # a sudden change at frame 7
    diff = pixel_baseline_scores(frames, "frame_difference", size=16, mode="resize", window=4)
    assert np.isnan(diff[:3]).all() and np.nanargmax(diff) == 7 and diff[8] == 0
    ramp = np.stack([np.full((16, 16, 3), 10 * i, np.uint8) for i in range(10)])  # brightness at constant speed
    lin = pixel_baseline_scores(ramp, "linear_extrapolation", size=16, mode="resize", window=4)
    assert np.nanmax(lin) < 1e-6 < np.nanmin(pixel_baseline_scores(ramp, "frame_difference", size=16,
                                                                    mode="resize", window=4))
    with pytest.raises(ValueError, match="unknown baseline"):
        pixel_baseline_scores(frames, "optical_flow", size=16, mode="resize", window=4)


def test_evaluate_surprise_reports_pixel_baselines(tiny_model):
    report = evaluate_surprise(tiny_model, pairs_per_type=1, violations=("teleport", "vanish"))
    assert set(report["baselines"]) == {"frame_difference", "linear_extrapolation"}
    for b in report["baselines"].values():
        assert b["overall"]["pairs"] == 2 and 0.0 <= b["overall"]["auroc"] <= 1.0
    assert "baselines" not in evaluate_surprise(tiny_model, pairs_per_type=1, violations=("vanish",),
                                                baselines=False)


def test_eval_surprise_command_prints_the_table_and_writes_the_report(tiny_model_dir, tmp_path):
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["eval-surprise", str(tiny_model_dir), "--pairs-per-type", "1",
                                      "--json", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "ties" in result.output and "(no model) frame_difference" in result.output
    report = json.loads(out.read_text())
    assert report["overall"]["pairs"] == 7 and 0.0 <= report["overall"]["pairwise_ties"] <= 1.0
    assert set(report["baselines"]) == {"frame_difference", "linear_extrapolation"}

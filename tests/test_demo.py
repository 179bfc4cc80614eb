"""`edge-jepa demo` writes a real annotated MP4, a PNG plot and a JSON summary."""

from __future__ import annotations

import json

import cv2
import pytest
from typer.testing import CliRunner

import edge_jepa
from edge_jepa.cli import app
from edge_jepa.demo import run_demo
from tests.video_files import count_frames

runner = CliRunner()


def test_demo_outputs_with_a_tiny_model(tiny_model, tmp_path):
    out = run_demo(tiny_model, tmp_path / "demo", seconds=4.0, violations=((2.0, "teleport"),), render_size=64)
    n, (h, w, _) = count_frames(out.video)
    assert n == 40 and w == 320 and h > 320  # frames upscaled to 320 px plus the score strip
    png = cv2.imread(str(out.plot))
    assert png is not None and png.shape[1] > 600
    report = json.loads(out.summary.read_text())
    assert report["frames"] == 40 and report["violations"][0]["violation"] == "teleport"
    assert report["violations"][0]["time_s"] == pytest.approx(2.0, abs=0.2)


@pytest.mark.slow
def test_demo_command_on_the_embedded_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["demo"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "edge-jepa-demo" / "summary.json").read_text())
    default = edge_jepa.load("default").config
    assert default.kind == "frame_causal"  # the frame-causal world model is the default
    assert report["model"] == default.name and len(report["violations"]) == 5
    # the README's demo output at 30 fps: the default scores the mean over tokens with k = 8, the setting chosen on
    # validation streams for at most one false event in 10 minutes of plausible scenes (docs/world-model.md,
    # "Streams"); there it finds 95% of teleports and 90% of colour changes, about half of vanish / appear, no
    # reversal. Here: teleport and colour change, no false event (issue 18's target, >= 4 of 5, is not met).
    assert int(report["detected"].split("/")[0]) >= 2 and report["false_events"] <= 1, report["detected"]
    found = {v["violation"] for v in report["violations"] if v["detected"]}
    assert {"teleport", "color_change"} <= found, found
    assert report["detector"]["prior"] is not None  # judged from the first window by the model's prior
    n, _ = count_frames(tmp_path / "edge-jepa-demo" / "demo.mp4")
    fps = default.clip.fps  # the scene is rendered at the model's frame rate
    assert report["fps"] == fps and n == report["frames"] == round(30.0 * fps)

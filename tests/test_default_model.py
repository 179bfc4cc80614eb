"""The embedded models by name: "default" is the frame-causal world model ("world" an alias of it), "window" the
window model; their rebuild recipes; the commands that default to the embedded model run on it (real model,
real onnxruntime, a real MP4)."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
import typer
from typer.testing import CliRunner

import edge_jepa
from edge_jepa.checkpoints import EMBEDDED, WINDOW_MODEL_DIR, WORLD_MODEL_DIR, CheckpointError, model_path
from edge_jepa.cli import app
from edge_jepa.models.world import FrameCausalJEPA
from edge_jepa.train.default_model import RECIPES

runner = CliRunner()


def test_default_is_the_frame_causal_model_world_its_alias_and_window_the_window_model():
    default, world, window = edge_jepa.load("default"), edge_jepa.load("world"), edge_jepa.load("window")
    assert isinstance(default, FrameCausalJEPA) and default.config.kind == "frame_causal"
    assert default.config.name == "world_pico" and default.config == world.config
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), world.state_dict().values(),
                                                  strict=True))
    assert window.config.kind == "window" and window.config.name == "vit_pico"
    assert model_path("default") == model_path("world") == WORLD_MODEL_DIR and model_path("window") == WINDOW_MODEL_DIR
    assert set(EMBEDDED) == {"default", "world", "window"}


@pytest.mark.parametrize(("name", "recipe"), [("window", "window"), ("world", "default")])
def test_each_asset_keeps_its_prior_and_a_card_that_rebuilds_it(name, recipe):
    path = EMBEDDED[name]
    weights = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    assert json.loads((path / "edge_jepa.json").read_text())["surprise_prior"]["weights_sha256"] == weights
    card = json.loads((path / "card.json").read_text())
    args, dest, title = RECIPES[recipe]
    assert dest == path and card["name"] == title
    assert card["reproduce"] == ["edge-jepa " + " ".join(args) + f" --out runs/{recipe}",
                                 f"python -m edge_jepa.train.default_model --which {recipe} --package runs/{recipe}"]


def test_rebuild_recipes_are_named_for_what_they_build(monkeypatch, tmp_path):
    assert RECIPES["default"] is RECIPES["world"]
    assert RECIPES["default"][1] == WORLD_MODEL_DIR and "world_pico" in RECIPES["default"][0]
    assert RECIPES["window"][1] == WINDOW_MODEL_DIR and "vit_pico" in RECIPES["window"][0]
    monkeypatch.setitem(EMBEDDED, "window", tmp_path / "gone")  # an install that lost the asset
    with pytest.raises(CheckpointError, match=r"rebuild it with `python -m edge_jepa.train.default_model --which "
                                              r"window`"):
        edge_jepa.load("window")


def _option_default(command: str, name: str):
    group = typer.main.get_command(app)
    return next(p.default for p in group.commands[command].params if p.name == name)


def test_every_command_defaults_to_the_embedded_default():
    assert _option_default("distill", "teacher") == _option_default("quantize-report", "source") == "default"
    assert _option_default("watch", "model") == _option_default("demo", "model") == "default"
    assert _option_default("distill", "student") is None  # chosen by the teacher's kind (test_distill_world)


def test_info_and_eval_surprise_without_a_model_run_on_the_default(tmp_path):
    res = runner.invoke(app, ["info"])
    assert res.exit_code == 0, res.output
    assert "default: world_pico (frame-causal)" in res.output
    res = runner.invoke(app, ["eval-surprise", "--pairs-per-type", "1", "--json", str(tmp_path / "e.json")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["model"] == "world_pico" and report["overall"]["pairs"] == 7


def test_demo_and_watch_without_a_model_run_on_the_default(tmp_path):
    from edge_jepa.data.synthetic import WorldConfig, render_long_video, write_mp4

    res = runner.invoke(app, ["demo", "--seconds", "8", "--out", str(tmp_path / "demo")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "demo" / "summary.json").read_text())["model"] == "world_pico"
    video = write_mp4(render_long_video(3, 3.0, WorldConfig(size=96, fps=15.0)).frames, tmp_path / "v.mp4", 15.0)
    res = runner.invoke(app, ["watch", str(video), "--headless", "--out", str(tmp_path / "w"), "--no-clips"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert summary["model"] == "world_pico" and summary["stats"]["windows_scored"] > 0


def test_export_default_writes_the_stream_step_bundle(tmp_path):
    res = runner.invoke(app, ["export", "default", "--format", "onnx", "--verify-clips", "1",
                              "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["kind"] == "frame_causal" and manifest["model"]["name"] == "world_pico"
    assert manifest["fidelity"]["verified"]

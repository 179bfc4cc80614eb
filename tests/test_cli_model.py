"""`edge-jepa info` / `convert` through the real console script entry point (typer's runner)."""

from __future__ import annotations

from typer.testing import CliRunner

import edge_jepa
from edge_jepa.cli import app
from tests.layouts import tiny_hf_model, write_official

runner = CliRunner()


def test_info_and_convert_official_checkpoint(tmp_path):
    hf = tiny_hf_model(hidden_size=128, num_attention_heads=2, pred_hidden_size=64, pred_num_attention_heads=2)
    ckpt = write_official(hf, tmp_path / "tiny.pt")
    res = runner.invoke(app, ["info", str(ckpt), "--frames", "4", "--size", "32"])
    assert res.exit_code == 0, res.output
    assert "custom-128x2" in res.output and "tokens" in res.output and "8  (grid 2 x 2 x 2)" in res.output
    res = runner.invoke(app, ["convert", str(ckpt), str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    a, b = edge_jepa.load(ckpt), edge_jepa.load(tmp_path / "out")
    assert all((x == y).all() for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_info_errors_are_one_line(tmp_path):
    res = runner.invoke(app, ["info", str(tmp_path / "missing.pt")])
    assert res.exit_code == 2 and "no such file" in res.output and "Traceback" not in res.output
    edge_jepa.create("vit_pico").save(tmp_path / "pico")
    res = runner.invoke(app, ["info", str(tmp_path / "pico"), "--frames", "3"])
    assert res.exit_code == 2 and "multiple of 2" in res.output

"""Fault injection: bad inputs and faults end in one clear `error: ...` line (or a correct result with a
warning), never a traceback, an abort, a lost file or a silent partial result.

Each case asserts the exit code, the one-line message and that the user's files and earlier outputs are intact.
Most run in-process (typer's CliRunner) on tiny models; the few that need a real process (an interpreter abort,
a real Ctrl-C) run one. Disk-full cases mount a small tmpfs, and skip where mounting is impossible (not root).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import edge_jepa
from edge_jepa.cli import app
from edge_jepa.data import WorldConfig, render_long_video, write_mp4
from edge_jepa.io import atomic_dir
from edge_jepa.outputs import OutputError, check_replaceable, clean_leftovers
from tests.conftest import TINY
from tests.layouts import tiny_hf_model
from tests.video_files import count_frames

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def assert_error(result, code: int, pattern: str) -> str:
    """Exit `code`, exactly one `error:` line matching `pattern`, and no traceback anywhere."""
    text = result.output
    assert "Traceback" not in text, text
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, text
    assert re.search(pattern, lines[0]), lines[0]
    assert result.exit_code == code, (result.exit_code, text)
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones too) with its sha256: to prove nothing was touched."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    scene = render_long_video(3, 6.0, WorldConfig(size=64, fps=10.0), [(3.0, "teleport")])
    return write_mp4(scene.frames, tmp_path_factory.mktemp("videos") / "scene.mp4", fps=10.0)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny"
    edge_jepa.create(TINY, seed=0).save(path)
    return path


# --------------------------------------------------------------------------------------- usage errors (exit 2)
# Option values Click/Typer refuse before any work: (arguments, what the message must say).
USAGE = [
    (["pretrain", "--out", "o", "--steps", "-5"], r"--steps.*greater than or equal to 1"),
    (["pretrain", "--out", "o", "--steps", "0"], r"--steps"),
    (["pretrain", "--out", "o", "--batch-size", "0"], r"--batch-size"),
    (["pretrain", "--out", "o", "--checkpoint-every", "0"], r"--checkpoint-every"),
    (["pretrain", "--out", "o", "--lr", "-1"], r"--lr.*-1.0 is not a finite number > 0"),
    (["pretrain", "--out", "o", "--lr", "nan"], r"--lr.*nan is not a finite number"),
    (["pretrain", "--out", "o", "--minutes", "0"], r"--minutes"),
    (["pretrain", "--out", "o", "--future-prob", "1.5"], r"--future-prob.*less than or equal to 1"),
    (["pretrain", "--out", "o", "--seed", "-1"], r"--seed"),
    (["pretrain", "--out", "o", "--threads", "0"], r"--threads"),
    (["pretrain", "--out", "o", "--frames", "0"], r"--frames"),
    (["pretrain", "--out", "o", "--fps", "-10"], r"--fps"),
    (["pretrain", "--out", "o", "--stepz", "3"], r"No such option: --stepz.*--steps"),
    (["pretrain", "--out", "o", "--steps", "many"], r"--steps"),
    (["demo", "--seconds", "-1"], r"--seconds.*-1.0 is not a finite number > 0"),
    (["demo", "--seconds", "inf"], r"--seconds.*inf"),
    (["demo", "--seed", "-3"], r"--seed"),
    (["watch", "x.mp4", "--seconds", "-1"], r"--seconds"),
    (["watch", "x.mp4", "--fps", "0"], r"--fps.*0.0 is not a finite number > 0"),
    (["watch", "x.mp4", "--k", "0"], r"--k"),
    (["watch", "x.mp4", "--k-low", "nan"], r"--k-low"),
    (["watch", "x.mp4", "--warmup", "-1"], r"--warmup"),
    (["watch", "x.mp4", "--min-duration", "-0.5"], r"--min-duration"),
    (["watch", "x.mp4", "--threads", "0"], r"--threads"),
    (["watch"], r"Missing argument 'source'"),
    (["eval-surprise", "--pairs-per-type", "0"], r"--pairs-per-type"),
    (["eval-surprise", "--tolerance", "-1"], r"--tolerance"),
    (["export", "default", "-f", "onnx", "--out", "b", "--frames", "0"], r"--frames"),
    (["export", "default", "-f", "onnx", "--out", "b", "--size", "-3"], r"--size"),
    (["export", "default", "-f", "onnx", "--out", "b", "--calibration-clips", "0"], r"--calibration-clips"),
    (["export", "default", "-f", "onnx", "--out", "b", "--verify-clips", "0"], r"--verify-clips"),
    (["info", "default", "--frames", "0"], r"--frames"),
    (["info", "default", "--size", "abc"], r"--size"),
    (["distill", "--out", "d", "--steps", "0"], r"--steps"),
    (["distill", "--out", "d", "--batch-size", "0"], r"--batch-size"),
    (["distill", "--out", "d", "--future-prob", "-0.1"], r"--future-prob"),
    (["distill", "--out", "d", "--w-jepa", "-1"], r"--w-jepa"),
    (["distill", "--out", "d", "--frame-stride", "0"], r"--frame-stride"),
    (["distill", "--out", "d", "--report-clips", "0"], r"--report-clips"),
    (["fit", "--source", "v.mp4", "--out", "f", "--synthetic-share", "2"], r"--synthetic-share"),
    (["fit", "--source", "v.mp4", "--out", "f", "--minutes", "-1"], r"--minutes"),
    (["fit", "--source", "v.mp4", "--out", "f", "--record-seconds", "0"], r"--record-seconds"),
    (["bench", "default", "--runs", "0"], r"--runs"),
    (["bench", "default", "--threads", "0"], r"--threads"),
    (["bench", "default", "--cell-timeout", "0"], r"--cell-timeout"),
    (["quantize-report", "--clips", "0"], r"--clips"),
    (["quantize-report", "--video-seconds", "0"], r"--video-seconds"),
    (["no-such-command"], r"No such command 'no-such-command'"),
]


@pytest.mark.parametrize("args,pattern", USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_usage_errors_are_one_line_with_exit_2_and_write_nothing(args, pattern, in_tmp):
    line = assert_error(run(*args), 2, pattern)
    assert "--help" in line or "No such command" in line  # where to look
    assert list(in_tmp.iterdir()) == []  # refused before any work


def test_no_arguments_shows_the_help():
    result = run()
    assert result.exit_code == 2 and "Usage" in result.output and "Traceback" not in result.output


# --------------------------------------------------------------------------------- output ownership (convert)
def test_convert_refuses_a_directory_of_user_files_and_keeps_them(in_tmp):
    docs = in_tmp / "mydocs"
    docs.mkdir()
    (docs / "thesis.txt").write_text("four years of work")
    before = snapshot(docs)
    assert_error(run("convert", "default", "mydocs"), 2, r"mydocs: is a directory of other files \(thesis.txt\).*"
                 r"refusing to replace.*--force")
    assert snapshot(docs) == before
    assert sorted(p.name for p in in_tmp.iterdir()) == ["mydocs"]  # no temp directory left beside it


def test_convert_refuses_an_existing_file(in_tmp):
    (in_tmp / "notes").write_text("mine")
    assert_error(run("convert", "default", "notes"), 2, r"notes: exists and is not a directory.*--force")
    assert (in_tmp / "notes").read_text() == "mine"


@pytest.mark.parametrize("target", [".", "..", "./"])
def test_convert_into_the_current_directory_or_its_parent_is_refused_without_leftovers(target, in_tmp):
    (in_tmp / "keep.txt").write_text("x")
    assert_error(run("convert", "default", target), 2, r"is the current directory.*name a new directory")
    assert sorted(p.name for p in in_tmp.iterdir()) == ["keep.txt"]
    assert not any(p.name.endswith(".tmp") for p in in_tmp.parent.iterdir())


def test_convert_with_force_replaces_and_an_own_model_dir_is_replaced(in_tmp):
    docs = in_tmp / "mydocs"
    docs.mkdir()
    (docs / "old.txt").write_text("x")
    assert run("convert", "default", "mydocs", "--force").exit_code == 0
    assert sorted(p.name for p in docs.iterdir()) == ["edge_jepa.json", "model.safetensors"]
    result = run("convert", "default", "mydocs")  # now it is ours: replaced without --force
    assert result.exit_code == 0 and edge_jepa.load(docs).config.name == "vit_pico"


def test_export_refuses_a_foreign_out_before_exporting(in_tmp):
    docs = in_tmp / "mydocs"
    docs.mkdir()
    (docs / "a.txt").write_text("x")
    assert_error(run("export", "default", "-f", "onnx", "--out", "mydocs"), 2, r"mydocs: is a directory of other "
                 r"files.*bundle")
    assert snapshot(docs) == {"a.txt": hashlib.sha256(b"x").hexdigest()}


def test_model_save_refuses_foreign_dirs_at_the_library_level(tmp_path, tiny_model):
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "f.txt").write_text("x")
    with pytest.raises(OutputError, match="not an edge-jepa bundle or model"):
        tiny_model.save(tmp_path / "user")
    check_replaceable(tmp_path / "missing")  # a new path, an empty folder and one of ours are fine
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty")


def test_leftovers_of_dead_writers_are_cleaned_and_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".model.{dead.pid}.abc123.tmp").mkdir()  # a run killed inside atomic_dir
    (tmp_path / f".model.{dead.pid}.abc123.tmp" / "model.safetensors").write_bytes(b"half")
    (tmp_path / f".log.json.{dead.pid}.xyz.tmp").write_text("half")  # killed inside atomic_file
    live = tmp_path / f".other.{os.getpid()}.q.tmp"  # a writer still running: kept
    live.write_text("in progress")
    (tmp_path / f".model2.old-{dead.pid}").mkdir()  # killed between the two renames of atomic_dir
    (tmp_path / f".model2.old-{dead.pid}" / "edge_jepa.json").write_text("{}")
    edge_jepa.create(TINY).save(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "model", "model2"])
    assert (tmp_path / "model2" / "edge_jepa.json").exists()  # restored, not deleted
    assert clean_leftovers(tmp_path) == []


def test_a_failure_inside_atomic_dir_leaves_the_old_output_and_no_temp(tmp_path):
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "manifest.json").write_text("{}")
    with pytest.raises(RuntimeError, match="exporter bug"), atomic_dir(target) as tmp:
        (tmp / "manifest.json").write_text("new")
        raise RuntimeError("exporter bug")
    assert (target / "manifest.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


# --------------------------------------------------------------------------------- checkpoints and models
def _hf_dir(tmp_path: Path, **changes) -> Path:
    hf = tiny_hf_model(hidden_size=128, num_attention_heads=2, pred_hidden_size=64, pred_num_attention_heads=2)
    hf.save_pretrained(tmp_path / "hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    cfg.update(changes)
    (tmp_path / "hf" / "config.json").write_text(json.dumps(cfg))
    return tmp_path / "hf"


@pytest.mark.parametrize("key,value,pattern", [
    ("hidden_size", "big", r'hidden_size is "big", expected a positive integer'),
    ("hidden_size", None, r"hidden_size is null, expected a positive integer"),
    ("num_hidden_layers", [2], r"num_hidden_layers is \[2\]"),
    ("num_attention_heads", 0, r"num_attention_heads is 0"),
    ("patch_size", "16", r"patch_size"),
    ("mlp_ratio", "wide", r'mlp_ratio is "wide", expected a positive number'),
    ("qkv_bias", "yes", r"qkv_bias"),
])
def test_hf_config_with_wrong_types_is_named(tmp_path, key, value, pattern):
    path = _hf_dir(tmp_path, **{key: value})
    assert_error(run("info", str(path)), 2, r"config\.json: " + pattern)


def test_hf_config_that_is_not_an_object(tmp_path):
    path = _hf_dir(tmp_path)
    (path / "config.json").write_text("[1, 2]")
    assert_error(run("info", str(path)), 2, r"config\.json: expected a JSON object of settings, found list")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("kind,pattern", [
    ("random", r"not a readable PyTorch checkpoint \(random bytes.*unpickler stopped at"),
    ("evil", r"refused to unpickle: the file holds Python objects"),
    ("evil-raw", r"refused to unpickle: the file holds Python objects"),
    ("truncated", r"not a readable PyTorch checkpoint.*failed finding central directory$"),
    ("text", r"not a readable PyTorch checkpoint"),
    ("empty", r"not a readable PyTorch checkpoint"),
    ("list", r"expected a dict of state dicts, found list"),
])
def test_bad_pt_files_are_named_without_torch_advice(in_tmp, kind, pattern):
    path = in_tmp / f"{kind}.pt"
    if kind == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "evil":
        torch.save({"encoder": _Evil()}, path)
    elif kind == "evil-raw":
        import pickle

        path.write_bytes(pickle.dumps({"encoder": _Evil()}, protocol=4))
    elif kind == "truncated":
        torch.save({"encoder": {"w": torch.zeros(100)}}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "text":
        path.write_text("these are my notes, not weights")
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        torch.save([torch.zeros(2)], path)
    line = assert_error(run("info", str(path)), 2, pattern)
    assert "weights_only set to False" not in line and "weights_only` set to `False" not in line
    assert "Re-running" not in line
    assert not (in_tmp / "pwned").exists()


def test_a_bundle_without_its_manifest_is_named(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.pte").write_bytes(b"x" * 64)
    assert_error(run("watch", "0", "--model", str(bundle)), 2, r"bundle: looks like an export bundle \(model\.pte\) "
                 r"but its manifest\.json is missing")
    (bundle / "model.pte").unlink()
    assert_error(run("info", str(bundle)), 2, r"holds neither manifest\.json")


def test_missing_model_path_is_named(in_tmp):
    assert_error(run("info", "nope"), 2, r"nope: no such file or directory; expected")


# ------------------------------------------------------------------------------------- training runs
def test_resume_without_a_checkpoint_says_so(in_tmp):
    result = run("pretrain", "--out", "run", "--steps", "1", "--batch-size", "1", "--resume")
    assert result.exit_code == 0, result.output
    assert "warning: --resume: there is no checkpoint at run/checkpoint.pt; starting a new run" in result.output
    assert (in_tmp / "run" / "model" / "edge_jepa.json").exists()


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_resume_on_a_damaged_checkpoint_names_it_and_keeps_it(in_tmp, damage):
    (in_tmp / "run").mkdir()
    ckpt = in_tmp / "run" / "checkpoint.pt"
    if damage == "truncated":
        torch.save({"step": 3, "model": {"w": torch.zeros(1000)}}, ckpt)
        ckpt.write_bytes(ckpt.read_bytes()[:500])
        pattern = r"run/checkpoint\.pt: cannot read this training checkpoint \(truncated or corrupt"
    else:
        torch.save({"step": 3}, ckpt)
        pattern = r"run/checkpoint\.pt: not a checkpoint of this trainer \(missing config, model"
    before = ckpt.read_bytes()
    assert_error(run("pretrain", "--out", "run", "--steps", "2", "--batch-size", "1", "--resume"), 2,
                 pattern + r".*delete it to start over")
    assert ckpt.read_bytes() == before


# ------------------------------------------------------------------------------------------- demo
def test_demo_shorter_than_calibration_says_how_long_it_must_be(in_tmp, model_dir):
    assert_error(run("demo", "--model", model_dir, "--seconds", "3", "--out", "d"), 2,
                 r"a 3 s demo is too short.*use --seconds \d+ or more")
    assert not (in_tmp / "d").exists()


def test_demo_places_its_violations_inside_a_short_scene(in_tmp, model_dir):
    from edge_jepa.demo import DEFAULT_VIOLATIONS, place_violations

    placed = place_violations(8.0, 0.4)
    assert 1 <= len(placed) < len(DEFAULT_VIOLATIONS) and all(4.4 < t <= 6.5 for t, _ in placed)
    assert place_violations(30.0, 0.4) == DEFAULT_VIOLATIONS
    with pytest.raises(ValueError, match="do not fit a 4 s scene"):
        place_violations(4.0, 0.4, ((9.0, "vanish"),))
    from edge_jepa.demo import run_demo

    out = run_demo(str(model_dir), in_tmp / "d", seconds=8.0, render_size=64)
    assert [v["violation"] for v in out.report["violations"]] == [n for _, n in placed]
    assert count_frames(out.video)[0] == 80

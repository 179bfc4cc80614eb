"""Fault injection: bad inputs and faults end in one clear `error: ...` line (or a correct result with a
warning), never a traceback, an abort, a lost file or a silent partial result.

Each case asserts the exit code, the one-line message and that the user's files and earlier outputs are intact.
Most run in-process (typer's CliRunner) on tiny models; the few that need a real process (an interpreter abort,
a real Ctrl-C) run one. Disk-full cases mount a small tmpfs, and skip where mounting is impossible (not root).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import edge_jepa
from edge_jepa import outputs
from edge_jepa.cli import app
from edge_jepa.data import WorldConfig, render_long_video, write_mp4
from edge_jepa.io import atomic_dir, strict_json
from edge_jepa.outputs import OutputError, OutputLock, check_replaceable, clean_leftovers
from edge_jepa.stream.events import EventLog
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
    (["watch", "x.mp4", "--notify", "ftp://hooks.example/x"], r"--notify 'ftp://hooks.example/x': expected an http"),
    (["watch", "x.mp4", "--notify", "localhost:8080/hook"], r"--notify 'localhost:8080/hook': expected an http"),
    (["watch", "x.mp4", "--notify", "http://host:http/"], r"--notify 'http://host:http/': Port could not be cast"),
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
    assert result.exit_code == 0 and edge_jepa.load(docs).config.name == "world_pico"  # the default


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
    host = outputs._HOST
    (tmp_path / f".model.{dead.pid}-{host}.abc123.tmp").mkdir()  # a run killed inside atomic_dir
    (tmp_path / f".model.{dead.pid}-{host}.abc123.tmp" / "model.safetensors").write_bytes(b"half")
    (tmp_path / f".log.json.{dead.pid}-{host}.xyz.tmp").write_text("half")  # killed inside atomic_file
    live = tmp_path / f".other.{os.getpid()}-{host}.q.tmp"  # a writer still running: kept
    live.write_text("in progress")
    elsewhere = tmp_path / f".shared.{dead.pid}-000000.q.tmp"  # another host's writer (a shared disk): kept...
    elsewhere.write_text("in progress")
    stale = tmp_path / f".shared2.{dead.pid}-000000.q.tmp"  # ...unless it is an hour old
    stale.write_text("old")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    (tmp_path / f".model2.old-{dead.pid}-{host}").mkdir()  # killed between the two renames of atomic_dir
    (tmp_path / f".model2.old-{dead.pid}-{host}" / "edge_jepa.json").write_text("{}")
    edge_jepa.create(TINY).save(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, elsewhere.name, "model", "model2"])
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
    result = run("demo", "--model", model_dir, "--seconds", "8", "--out", "d8")  # the command the issue tried
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert len(json.loads((in_tmp / "d8" / "summary.json").read_text())["violations"]) == len(placed)


# ------------------------------------------------------------------------------------------------ watch
def _watch(model_dir: Path, source, out: Path, *extra: str):
    return run("watch", str(source), "--model", str(model_dir), "--headless", "--out", str(out), *extra)


def test_a_second_watch_on_the_same_out_is_refused_and_the_first_keeps_its_files(tmp_path, model_dir, video):
    out = tmp_path / "out"
    out.mkdir()
    (out / "events.jsonl").write_text('{"id": 1, "start_s": 1.0}\n')
    before = snapshot(out)
    with OutputLock(out, "watch"):  # the first run, still writing
        assert_error(_watch(model_dir, video, out), 2, r"out: in use by edge-jepa watch \(pid \d+.*wait for it to "
                     r"end, or choose another --out")
        assert {k: v for k, v in snapshot(out).items() if k != ".edge-jepa.lock"} == before
    result = _watch(model_dir, video, out)  # once it has ended, the next run continues the log
    assert result.exit_code == 0, result.output
    ids = [e["id"] for e in EventLog.read(out / "events.jsonl")]
    assert ids[0] == 1 and len(ids) == len(set(ids))
    assert not (out / ".edge-jepa.lock").exists()


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path):
    code = (f"import sys, time; sys.path.insert(0, {str(REPO)!r}); from edge_jepa.outputs import OutputLock; "
            f"OutputLock({str(tmp_path)!r}, 'watch').acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputError, match=f"pid {holder.pid}"):
            OutputLock(tmp_path, "watch").acquire()
    finally:
        holder.kill()
        holder.wait()
    with OutputLock(tmp_path, "watch"):  # kill -9 left the file, not the lock
        pass


def test_watch_cleans_the_leftovers_of_a_killed_run(tmp_path, model_dir, video):
    out = tmp_path / "out"
    (out / "clips").mkdir(parents=True)
    (out / "clips" / ".event_0001.partial.mp4").write_bytes(b"half a clip")
    (out / ".annotated.partial.mp4").write_bytes(b"half a video")
    (out / f".summary.json.999999999-{outputs._HOST}.abc.tmp").write_text("{")  # pid that cannot exist
    (out / "notes.txt").write_text("the user's")
    result = _watch(model_dir, video, out)
    assert result.exit_code == 0, result.output
    names = {str(p.relative_to(out)) for p in out.rglob("*")}
    assert not any(".partial" in n or n.endswith(".tmp") for n in names), names
    assert (out / "notes.txt").read_text() == "the user's"


def test_watch_out_onto_an_existing_file_is_refused(tmp_path, model_dir, video):
    (tmp_path / "f").write_text("mine")
    assert_error(_watch(model_dir, video, tmp_path / "f"), 2, r"f: exists and is not a folder")
    assert (tmp_path / "f").read_text() == "mine"


def test_watch_short_source_writes_strict_json_with_nulls(tmp_path, model_dir):
    frames = render_long_video(1, 1.0, WorldConfig(size=64, fps=10.0)).frames[:3]  # 3 frames < a window of 4
    path = write_mp4(frames, tmp_path / "short.mp4", fps=10.0)
    result = _watch(model_dir, path, tmp_path / "out")
    assert result.exit_code == 0 and "before one window of the model" in result.output
    text = (tmp_path / "out" / "summary.json").read_text()

    def refuse(name):
        raise AssertionError(f"bare {name} in summary.json")

    summary = json.loads(text, parse_constant=refuse)
    assert summary["stats"]["latency_ms"]["p50"] is None and summary["warnings"]


def test_watch_notify_posts_each_event_record_to_the_webhook(tmp_path, model_dir, video):
    """--notify with a real local HTTP server: one POST per event, equal to its events.jsonl line (run id
    included); the table counts the deliveries. (Failing and hanging hooks: tests/test_stream_evidence.py.)"""
    import http.server
    import threading

    bodies: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:  # a low bar (k = 1) so that the tiny random model raises events on the teleport scene
        result = _watch(model_dir, video, tmp_path / "out", "--warmup", "1", "--k", "1", "--k-low", "0.5",
                        "--notify", f"http://127.0.0.1:{server.server_address[1]}/hook")
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    records = EventLog.read(tmp_path / "out" / "events.jsonl")
    assert records and sorted(bodies, key=lambda b: b["id"]) == records
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {r["run_id"] for r in records} == {summary["run_id"]} and summary["notify"]["sent"] == len(records)
    assert re.search(rf"webhook sent / failed / dropped /.*{len(records)} / 0 / 0 / 0", result.output, re.S)
    assert "not delivered" not in result.output


def test_watch_names_the_size_changes_of_an_image_folder(tmp_path, model_dir):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(12):
        size = (64, 64) if i % 3 == 0 else (48, 80)
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((*size, 3), 40 * (i % 5), np.uint8))
    result = _watch(model_dir, folder, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "the image size changes" in result.output and "000.png 64x64 -> 001.png 80x48" in result.output
    assert "ended after" not in result.output  # not the misleading "too short" message


def test_watch_warns_when_a_file_ends_before_its_announced_frames(tmp_path, model_dir):
    writer = cv2.VideoWriter(str(tmp_path / "full.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    frames = render_long_video(2, 10.0, WorldConfig(size=64, fps=10.0)).frames
    for f in frames:
        writer.write(np.ascontiguousarray(f[:, :, ::-1]))
    writer.release()
    data = (tmp_path / "full.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])  # the header still announces 100 frames
    result = _watch(model_dir, tmp_path / "cut.avi", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert re.search(r"cut\.avi: ended after \d+ of the 100 frames its header announces", result.output)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert any("100 frames" in w for w in summary["warnings"])
    ok = _watch(model_dir, tmp_path / "full.avi", tmp_path / "out2")
    assert ok.exit_code == 0 and "announces" not in ok.output


def test_watch_warns_when_an_http_server_closes_the_stream_early(tmp_path, model_dir):
    import http.server
    import socketserver
    import threading

    writer = cv2.VideoWriter(str(tmp_path / "cam.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for f in render_long_video(4, 10.0, WorldConfig(size=64, fps=10.0)).frames:
        writer.write(np.ascontiguousarray(f[:, :, ::-1]))
    writer.release()
    data = (tmp_path / "cam.avi").read_bytes()

    class DiesHalfway(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # announces the whole file, sends half of it, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True

        def log_message(self, *args):
            pass

    with socketserver.TCPServer(("127.0.0.1", 0), DiesHalfway) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/cam.avi"
        result = _watch(model_dir, url, tmp_path / "out")
        server.shutdown()
    assert result.exit_code == 0, result.output
    assert re.search(r"cam\.avi: ended after \d+ of the 100 frames its header announces .*a server that closed "
                     r"the connection", result.output)


def test_every_logged_event_points_at_a_finished_clip(tmp_path, model_dir, video):
    out = tmp_path / "out"
    result = _watch(model_dir, video, out, "--warmup", "0.5", "--k", "0.5", "--k-low", "0.2")
    assert result.exit_code == 0, result.output
    events = EventLog.read(out / "events.jsonl")
    assert events, "the low threshold must raise events"
    for ev in events:
        n, _ = count_frames(out / ev["clip"])
        assert n > 0, ev
    assert not list(out.rglob(".*partial*"))


def test_an_event_is_logged_only_when_its_clip_is_complete(tmp_path, model_dir, video):
    from edge_jepa.stream import EventDetector, watch

    out, seen = tmp_path / "out", []

    def on_event(ev):  # called once the event is logged: its line and its finished clip are on disk now
        assert ev.clip is not None and count_frames(out / ev.clip)[0] > 0, ev
        assert ev.id in [e["id"] for e in EventLog.read(out / "events.jsonl")]
        assert not list((out / "clips").glob(f".{Path(ev.clip).stem}.partial*"))
        seen.append(ev.id)

    watch(str(video), model=str(model_dir), out=out, detector=EventDetector(warmup_s=0.5, k=0.5, k_low=0.2),
          on_event=on_event)
    assert seen


def test_surprise_scores_names_what_it_needs():
    model = edge_jepa.create(TINY)
    with pytest.raises(TypeError, match=r"got the path 'video.mp4'.*read_video"):
        edge_jepa.surprise_scores(model, "video.mp4")
    with pytest.raises(TypeError, match=r"frames: got NoneType"):
        edge_jepa.surprise_scores(model, None)
    with pytest.raises(TypeError, match=r"model: got NoneType, expected a VJEPA2"):
        edge_jepa.surprise_scores(None, np.zeros((5, 32, 32, 3), np.uint8))
    with pytest.warns(RuntimeWarning, match=r"2 frame\(s\) are fewer than one window of the model \(4 frames"):
        scores = edge_jepa.surprise_scores(model, np.zeros((2, 32, 32, 3), np.uint8))
    assert np.isnan(scores).all() and len(scores) == 2


def test_strict_json_writes_null_for_non_finite_numbers():
    text = strict_json({"a": float("nan"), "b": [float("inf"), 1.5], "c": np.float32("nan"), "d": np.int64(3)})
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": None, "d": 3}


def test_debug_shows_the_traceback_of_an_internal_error(monkeypatch, in_tmp):
    import edge_jepa.checkpoints

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(edge_jepa, "load", broken)  # first: edge_jepa.load resolves lazily to checkpoints.load
    monkeypatch.setattr(edge_jepa.checkpoints, "load", broken)
    line = assert_error(run("convert", "default", "m"), 1, r"internal error: ZeroDivisionError: a bug; rerun with "
                        r"--debug \(or EDGE_JEPA_DEBUG=1\) for the traceback")
    assert line
    for args, env in ((["--debug", "convert", "default", "m"], None), (["convert", "default", "m"],
                                                                       {"EDGE_JEPA_DEBUG": "1"})):
        result = run(*args, env=env)
        assert isinstance(result.exception, ZeroDivisionError) and "error:" not in result.output


# ------------------------------------------------------------------------------ garbage artifacts in bundles
def _method(file: str, entry: str, inp: tuple[str, list[int]], out: list[int]) -> dict:
    return {"file": file, "entry": entry, "inputs": [{"name": inp[0], "shape": inp[1], "dtype": "float32"}],
            "outputs": [{"name": "tokens", "shape": out, "dtype": "float32"}]}


def fake_bundle(path: Path, fmt: str, artifacts: dict[str, bytes]) -> Path:
    """A bundle whose manifest is right and whose artifacts are `artifacts` (hashes matching): what a
    re-hashed manifest or an exporter bug leaves."""
    path.mkdir(parents=True)
    files = {}
    for name, data in artifacts.items():
        (path / name).write_bytes(data)
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    pick = (lambda m: "model.pte") if fmt == "executorch" else (lambda m: f"{m}.onnx")
    methods = {"encode_context": _method(pick("encode_context"), "encode_context", ("clip", [1, 3, 2, 32, 32]),
                                         [1, 4, 32]),
               "encode_window": _method(pick("encode_window"), "encode_window", ("clip", [1, 3, 4, 32, 32]),
                                        [1, 8, 32]),
               "predict": _method(pick("predict"), "predict", ("context", [1, 4, 32]), [1, 4, 32])}
    manifest = {"bundle_format_version": 1, "format": fmt, "precision": "fp32", "methods": methods, "files": files,
                "model": {"name": TINY.name, "config": TINY.to_dict()}}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


_RANDOM = np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8).tobytes()
GARBAGE_PTE = {
    "random": _RANDOM,  # ExecuTorch logs its wrong identifier as raw bytes and aborts the interpreter on them
    "empty": b"",
    "header-only": b"\x1c\x00\x00\x00ET12",
    "valid-header-garbage-body": b"\x1c\x00\x00\x00ET12" + _RANDOM,
    "text": b"this is not a program at all, just some text" * 20,
}


def test_garbage_pte_artifacts_are_bundle_errors_never_aborts(tmp_path):
    bundles = {name: str(fake_bundle(tmp_path / name, "executorch", {"model.pte": data}))
               for name, data in GARBAGE_PTE.items()}
    # in a child process: an abort (exit 134) would take pytest with it
    code = (f"import json, sys; sys.path.insert(0, {str(REPO)!r})\n"
            "from edge_jepa.runtime import Runner\nfrom edge_jepa.runtime.bundle import BundleError\n"
            f"for name, path in {bundles!r}.items():\n"
            "    try:\n        Runner.open(path)\n        print(json.dumps([name, 'opened']), flush=True)\n"
            "    except BundleError as e:\n        print(json.dumps([name, str(e)]), flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = dict(json.loads(line) for line in proc.stdout.splitlines() if line.startswith("["))
    assert set(results) == set(GARBAGE_PTE)
    for name, message in results.items():
        assert f"{name}/model.pte: " in message and "re-export the bundle" in message, (name, message)
    assert "not an ExecuTorch program" in results["random"]


@pytest.mark.parametrize("kind", ["random", "empty", "truncated-proto"])
def test_garbage_onnx_artifacts_are_bundle_errors(tmp_path, kind):
    data = {"random": _RANDOM, "empty": b"", "truncated-proto": b"\x08\x07\x12\x04test\x3a"}[kind]
    bundle = fake_bundle(tmp_path / "b", "onnx", {"encode_context.onnx": data, "encode_window.onnx": data,
                                                   "predict.onnx": data})
    assert_error(run("watch", "0", "--model", bundle), 2, r"b/encode_context\.onnx: onnx cannot load this artifact "
                 r"\(.*\).*re-export the bundle")
    from edge_jepa.runtime.bundle import BundleError

    with pytest.raises(BundleError, match="encode_context.onnx"):
        edge_jepa.surprise_scores(str(bundle), np.zeros((4, 32, 32, 3), np.uint8))


def test_a_pte_with_a_wrong_header_is_refused_before_the_runtime_sees_it(tmp_path):
    bundle = fake_bundle(tmp_path / "b", "executorch", {"model.pte": _RANDOM})
    assert_error(run("watch", "0", "--model", bundle), 2, r"b/model\.pte: not an ExecuTorch program \(its header "
                 r"is .*\).*re-export the bundle")


# ------------------------------------------------------------------------------------------- Ctrl-C
def _ctrl_c_enabled() -> None:
    """In the child before exec: SIGINT back to its default. A test run started as a background job (`cmd &` in a
    script, as CI runners do) has SIGINT ignored, and a child would inherit that; a terminal's Ctrl-C reaches a
    foreground process that has it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _watch_process(tmp_path: Path, model_dir: Path, out: Path) -> subprocess.Popen:
    """`edge-jepa watch` in real time on a 30 s video in its own process, returned once it is scoring."""
    scene = render_long_video(5, 30.0, WorldConfig(size=64, fps=10.0))
    path = write_mp4(scene.frames, tmp_path / "long.mp4", fps=10.0)
    proc = subprocess.Popen([sys.executable, "-m", "edge_jepa.cli.main", "watch", str(path), "--model",
                             str(model_dir), "--headless", "--realtime", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=_ctrl_c_enabled)
    deadline = time.monotonic() + 60
    while not (out / ".annotated.partial.mp4").exists() and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"watch ended early: {proc.stderr.read()}")
        time.sleep(0.1)  # the annotated video has begun: scoring is under way
    return proc


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_during_watch_exits_130_with_complete_outputs(tmp_path, model_dir, presses):
    out = tmp_path / "out"
    proc = _watch_process(tmp_path, model_dir, out)
    try:
        time.sleep(0.5)
        for _ in range(presses):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Traceback" not in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_by"] == "interrupt" and summary["interrupted"]
    assert count_frames(out / "annotated.mp4")[0] > 0
    assert not list(out.rglob(".*partial*")) and not (out / ".edge-jepa.lock").exists()


# -------------------------------------------------------------------------------- disk full, read-only disk
@contextlib.contextmanager
def _tmpfs(path: Path, size: str, read_only: bool = False):
    """A small tmpfs at `path` (needs root; the test is skipped where it cannot be mounted)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({(mounted.stderr or 'not root').strip()}): disk-full cases need one")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _leftovers(folder: Path) -> list[str]:
    return [str(p.relative_to(folder)) for p in folder.rglob("*") if ".tmp" in p.name or ".partial" in p.name]


def test_disk_full_during_convert_keeps_the_old_model_and_leaves_nothing(tmp_path):
    with _tmpfs(tmp_path / "fs", "600k") as fs:
        edge_jepa.create(TINY, seed=0).save(fs / "m")  # ours, small: the bigger default cannot replace it here
        before = snapshot(fs / "m")
        assert_error(run("convert", "default", fs / "m"), 1, r"no space left on the device.*free some space or "
                     r"choose an --out on another disk")
        assert snapshot(fs / "m") == before and edge_jepa.load(fs / "m").config.name == TINY.name
        assert _leftovers(fs) == [] and sorted(p.name for p in fs.iterdir()) == ["m"]


def test_disk_full_during_pretrain_is_a_clean_error(tmp_path):
    with _tmpfs(tmp_path / "fs", "300k") as fs:
        result = run("pretrain", "--out", fs / "run", "--steps", "2", "--batch-size", "1", "--checkpoint-every", "1")
        assert_error(result, 2, r"could not write checkpoint .*checkpoint\.pt at step 1: No space left on device; "
                     r"there is no earlier checkpoint")
        assert _leftovers(fs) == []


def test_disk_full_during_watch_keeps_no_partial_clip_and_no_dangling_event(tmp_path, model_dir, video):
    with _tmpfs(tmp_path / "fs", "120k") as fs:
        out = fs / "out"
        result = _watch(model_dir, video, out, "--warmup", "0.5", "--k", "0.5", "--k-low", "0.2")
        assert_error(result, 1, r"no space left on the device")
        assert _leftovers(fs) == [], _leftovers(fs)
        if (out / "events.jsonl").exists():
            for ev in EventLog.read(out / "events.jsonl"):
                assert ev["clip"] is None or count_frames(out / ev["clip"])[0] > 0, ev
        for clip in (out / "clips").glob("*.mp4"):
            assert count_frames(clip)[0] > 0, clip  # every clip under its final name is decodable
        assert not (out / ".edge-jepa.lock").exists()


def test_video_writer_on_a_full_disk_raises_enospc_and_keeps_nothing(tmp_path):
    from edge_jepa.viz import VideoWriter

    with _tmpfs(tmp_path / "fs", "100k") as fs:
        writer = VideoWriter(fs / "a.mp4", 10.0)
        noise = np.random.default_rng(0).integers(0, 256, (60, 96, 96, 3), dtype=np.uint8)
        for frame in noise:
            writer.write(frame)
        with pytest.raises(OSError, match=r"a\.mp4 was left incomplete") as info:
            writer.close()
        assert info.value.errno == errno.ENOSPC and list(fs.iterdir()) == []


def test_a_read_only_out_is_a_clean_error(tmp_path, model_dir, video):
    with _tmpfs(tmp_path / "ro", "100k", read_only=True) as ro:
        assert_error(_watch(model_dir, video, ro / "out"), 1, r"cannot write .*ro/out.*Read-only file system; choose "
                     r"a writable location")
        assert_error(run("convert", "default", ro / "m"), 2, r"ro/m: cannot be written \(.*ro is not writable\); "
                     r"choose another location")  # refused before converting


def test_every_option_is_named_after_its_parameter():
    """An option declaration attached to the wrong parameter (`--resume` on `seed`) turns a flag into a number."""
    import typer.main

    def commands(group, path=()):
        for name, sub in getattr(group, "commands", {}).items():
            yield from commands(sub, (*path, name)) if hasattr(sub, "commands") else [((*path, name), sub)]

    aliases = {"json_out": "--json", "markdown_out": "--markdown"}
    for path, command in commands(typer.main.get_command(app)):
        for param in command.params:
            if getattr(param, "param_type_name", "") == "option":
                expected = aliases.get(param.name, "--" + param.name.replace("_", "-"))
                assert expected in param.opts, (path, param.name, param.opts)


def test_disk_full_during_distill_is_a_clean_error(tmp_path, model_dir):
    from edge_jepa.models.config import EncoderConfig, ModelConfig, PredictorConfig

    student = ModelConfig(name="fault-student", encoder=EncoderConfig(width=16, depth=1, heads=2),
                          predictor=PredictorConfig(width=16, depth=1, heads=2, num_mask_tokens=2), clip=TINY.clip)
    spec = tmp_path / "student.json"
    spec.write_text(json.dumps(student.to_dict()))
    with _tmpfs(tmp_path / "fs", "24k") as fs:
        result = run("distill", "--teacher", model_dir, "--student", spec, "--out", fs / "run", "--steps", "2",
                     "--batch-size", "2", "--checkpoint-every", "1", "--report-pairs", "0", "--report-clips", "1",
                     "--threads", "1")
        line = assert_error(result, 2, r"(?i)no space left on (the )?device")
        assert "checkpoint" in line or "could not write" in line or "writing" in line
        assert _leftovers(fs) == []


def test_disk_full_at_the_second_checkpoint_keeps_the_first_and_it_resumes(tmp_path, model_dir):
    with _tmpfs(tmp_path / "fs", "1500k") as fs:
        args = ["pretrain", "--model", model_dir, "--steps", "3", "--batch-size", "1", "--checkpoint-every", "1"]
        assert_error(run(*args, "--out", fs / "run"), 2, r"checkpoint\.pt at step 2: No space left on device; "
                     r"the previous checkpoint is intact")
        assert _leftovers(fs) == []
        shutil.copytree(fs / "run", tmp_path / "run")  # the user frees space (here: moves the run elsewhere)
    result = run(*args, "--out", tmp_path / "run", "--resume")
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "at step 1/3" in result.output
    assert edge_jepa.load(tmp_path / "run" / "model").config.name == TINY.name


# Outputs that cannot be written are refused before the work, not after it: (arguments, message).
OUTPUT_PATHS = [
    (["demo", "--out", "afile"], r"afile: exists and is not a folder"),
    (["eval-surprise", "--json", "afile/x.json"], r"afile/x\.json: cannot be created, because afile is a file"),
    (["eval-surprise", "--json", "adir"], r"adir: is a folder; give a file name"),
    (["pretrain", "--out", "afile", "--steps", "1"], r"afile: exists and is not a folder"),
    (["distill", "--out", "afile", "--steps", "1"], r"afile: exists and is not a folder"),
    (["distill", "--out", "d", "--steps", "1", "--json", "afile/r.json"], r"afile/r\.json: cannot be created"),
    (["bench", "default", "--json", "afile/b.json"], r"afile/b\.json: cannot be created"),
    (["bench", "default", "--markdown", "adir"], r"adir: is a folder"),
    (["quantize-report", "--json", "afile/q.json"], r"afile/q\.json: cannot be created"),
    (["fit", "--source", "v.mp4", "--out", "adir"], r"adir: is a directory of other files"),
]


@pytest.mark.parametrize("args,pattern", OUTPUT_PATHS, ids=[" ".join(a) for a, _ in OUTPUT_PATHS])
def test_unwritable_outputs_are_refused_before_the_work(in_tmp, args, pattern):
    (in_tmp / "afile").write_text("mine")
    (in_tmp / "adir").mkdir()
    (in_tmp / "adir" / "keep.txt").write_text("mine")
    before = snapshot(in_tmp)
    started = time.monotonic()
    assert_error(run(*args), 2, pattern)
    assert time.monotonic() - started < 30  # refused up front (the work itself takes minutes)
    assert snapshot(in_tmp) == before and sorted(p.name for p in in_tmp.iterdir()) == ["adir", "afile"]


def test_ffmpeg_log_lines_do_not_precede_the_error(tmp_path):
    (tmp_path / "notvideo.mp4").write_text("not a video")
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from edge_jepa.cli import app; "
            f"app(['watch', {str(tmp_path / 'notvideo.mp4')!r}, '--headless'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"})
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "W1" not in line[:2]
             and "torchao" not in line and "pytree" not in line]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "OpenCV cannot open this as a video" in lines[0]


def test_after_kill_9_during_watch_the_next_run_cleans_up_and_keeps_the_log(tmp_path, model_dir, video):
    out = tmp_path / "out"
    proc = _watch_process(tmp_path, model_dir, out)
    try:
        time.sleep(0.5)
    finally:
        proc.kill()  # SIGKILL: no cleanup of its own
        proc.wait()
    assert (out / ".annotated.partial.mp4").exists() and (out / ".edge-jepa.lock").exists()  # the real leftovers
    result = _watch(model_dir, video, out)
    assert result.exit_code == 0, result.output
    assert _leftovers(out) == [] and not (out / ".edge-jepa.lock").exists()
    assert count_frames(out / "annotated.mp4")[0] > 0
    json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("args,pattern", [
    (["pretrain", "--out", "r", "--data", "", "--steps", "1"], r"data '': an empty path"),
    (["pretrain", "--out", "r", "--data", "synthetic+", "--steps", "1"], r"data 'synthetic\+': an empty path"),
    (["watch", "", "--headless"], r"an empty source: give a camera index"),
    (["convert", "default", "afile/m"], r"afile/m: cannot be created, because afile is a file"),
    (["export", "default", "-f", "onnx", "--out", "afile/b"], r"afile/b: cannot be created, because afile is a file"),
])
def test_empty_paths_and_outputs_under_a_file_are_named(in_tmp, args, pattern):
    (in_tmp / "afile").write_text("mine")
    (in_tmp / "clip.mp4").write_text("not a video")  # what an empty path would otherwise pick up
    assert_error(run(*args), 2, pattern)
    assert sorted(p.name for p in in_tmp.iterdir()) == ["afile", "clip.mp4"]


def test_every_numeric_option_has_a_range():
    """A number option without min/max (or a finiteness callback) lets -1, 0 or nan through to a traceback."""
    import ast

    unchecked, seen = [], 0
    for path in sorted((REPO / "edge_jepa" / "cli").glob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef):
                continue
            args = fn.args.args[len(fn.args.args) - len(fn.args.defaults):]
            for arg, default in zip(args, fn.args.defaults, strict=True):
                annotation = ast.unparse(arg.annotation) if arg.annotation else ""
                numeric = annotation.split(" |")[0] in ("int", "float")
                if numeric and isinstance(default, ast.Call) and ast.unparse(default.func) == "typer.Option":
                    seen += 1
                    keywords = {k.arg for k in default.keywords}
                    if not keywords & {"min", "max", "callback"}:
                        unchecked.append(f"{path.name}:{fn.name}:{arg.arg}")
    assert seen > 60 and not unchecked, (seen, unchecked)


def test_debug_also_shows_the_traceback_behind_a_handled_error(in_tmp):
    (in_tmp / "random.pt").write_bytes(b"\x00garbage" * 100)
    quiet = run("info", "random.pt")
    assert "Traceback" not in quiet.output and quiet.exit_code == 2, quiet.output
    for args, env in ((["--debug", "info", "random.pt"], None), (["info", "random.pt"], {"EDGE_JEPA_DEBUG": "1"})):
        loud = run(*args, env=env)
        assert loud.exit_code == 2 and "Traceback" in loud.output, loud.output
        assert loud.output.strip().splitlines()[-1].startswith("error: random.pt: not a readable PyTorch checkpoint")
    assert "Traceback" not in run("--debug", "info", "default", "--frames", "0").output  # a usage error: none


def test_distill_resume_on_a_damaged_checkpoint_names_it_and_keeps_it(tmp_path, model_dir):
    from edge_jepa.models.config import EncoderConfig, ModelConfig, PredictorConfig

    student = ModelConfig(name="fault-student", encoder=EncoderConfig(width=16, depth=1, heads=2),
                          predictor=PredictorConfig(width=16, depth=1, heads=2, num_mask_tokens=2), clip=TINY.clip)
    (tmp_path / "student.json").write_text(json.dumps(student.to_dict()))
    (tmp_path / "run").mkdir()
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.write_bytes(b"PK\x03\x04" + b"\x00" * 200)  # the start of a zip, then nothing
    assert_error(run("distill", "--teacher", model_dir, "--student", tmp_path / "student.json", "--out",
                     tmp_path / "run", "--steps", "2", "--resume"), 2,
                 r"run/checkpoint\.pt: cannot read this training checkpoint \(truncated or corrupt.*delete it")
    assert ckpt.read_bytes() == b"PK\x03\x04" + b"\x00" * 200

"""Distillation at scale: 2-process DDP under torchrun (identical weights, disjoint data), kill -9 + resume,
SIGTERM saves a checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import edge_jepa

pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _flags(teacher: Path, out: Path, steps: int, extra: tuple[str, ...] = ()) -> list[str]:
    return ["--teacher", str(teacher), "--student", "vit_nano", "--frames", "4", "--size", "32",
            "--context-frames", "2", "--out", str(out), "--steps", str(steps), "--batch-size", "4",
            "--checkpoint-every", "5", "--report-pairs", "1", "--report-clips", "2", "--threads", "1", *extra]


def _cli(teacher: Path, out: Path, steps: int, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "edge_jepa.cli.main", "distill", *_flags(teacher, out, steps, extra)]


def _log(out: Path) -> list[dict]:
    path = out / "loss.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_torchrun_two_ranks_end_with_identical_weights_on_different_data(tiny_model_dir, tmp_path):
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node", "2", "--standalone", "-m", "edge_jepa.distill",
           *_flags(tiny_model_dir, out, 6, ("--cache-teacher", "--cache-batches", "8"))]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 processes (gloo)" in res.stdout
    ranks = [json.loads((out / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and [r["step"] for r in ranks] == [6, 6]
    assert ranks[0]["student_sha256"] == ranks[1]["student_sha256"]  # DDP kept the replicas identical
    assert ranks[0]["data_sha256"] != ranks[1]["data_sha256"]  # ... while each rank trained on its own shard
    assert ranks[0]["first_batches"][:4] == [0, 2, 4, 6] and ranks[1]["first_batches"][:4] == [1, 3, 5, 7]
    assert len(list((out / "teacher_cache").glob("batch_*.safetensors"))) == 8  # both ranks wrote their share
    student = edge_jepa.load(out / "student")
    from edge_jepa.distill.data import state_digest

    assert state_digest(student) == ranks[0]["student_sha256"]  # the saved student is what the ranks hold
    assert json.loads((out / "student" / "card.json").read_text())["distillation"]["processes"] == 2


def test_kill_9_and_resume_matches_an_uninterrupted_run(tiny_model_dir, tmp_path):
    straight = tmp_path / "straight"
    subprocess.run(_cli(tiny_model_dir, straight, 40), check=True, capture_output=True, timeout=300, env=ENV)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(tiny_model_dir, killed, 40), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=ENV)
    deadline = time.time() + 180
    while time.time() < deadline:  # a checkpoint at step >= 10 exists and the run went past it: kill -9
        if any(r["step"] >= 20 for r in _log(killed)):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "student").exists(), "the run finished before it could be killed"
    ckpt = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert 10 <= ckpt["step"] < 40
    subprocess.run(_cli(tiny_model_dir, killed, 40, ("--resume",)), check=True, capture_output=True, timeout=300,
                   env=ENV)

    a, b = edge_jepa.load(straight / "student"), edge_jepa.load(killed / "student")
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(x, y, atol=1e-6), k
    steps = [r["step"] for r in _log(killed)]
    assert steps == [10, 20, 30, 40]  # the log continues after the checkpoint, no repeated steps
    assert np.allclose([r["loss"] for r in _log(killed)], [r["loss"] for r in _log(straight)], atol=1e-6)
    resumed = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert resumed["scheduler"]["last_epoch"] == 40 and resumed["step"] == 40


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_sigterm_checkpoints_and_exits(tiny_model_dir, tmp_path):
    out = tmp_path / "term"
    proc = subprocess.Popen(_cli(tiny_model_dir, out, 100000), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.time() + 120
    while time.time() < deadline and not _log(out):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] >= 10 and not (out / "student").exists()


def test_torchrun_two_ranks_distil_a_frame_causal_teacher_as_one_process_does(tmp_path):
    """The frame-causal distiller splits each global batch between the ranks (same clips, same frame rate), so
    2 processes end where 1 process ends, up to float rounding; the replicas stay identical."""
    from edge_jepa.distill import DistillConfig, distill
    from edge_jepa.distill.data import state_digest
    from tests.test_distill_world import TINY_STUDENT, TINY_TEACHER

    teacher = tmp_path / "teacher"
    edge_jepa.create(TINY_TEACHER, seed=1).save(teacher)
    spec = tmp_path / "student.json"
    spec.write_text(json.dumps(TINY_STUDENT.to_dict()))
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node", "2", "--standalone", "-m", "edge_jepa.distill", "--teacher", str(teacher),
           "--student", str(spec), "--out", str(out), "--steps", "4", "--batch-size", "4", "--lr", "0.003",
           "--warmup", "1", "--checkpoint-every", "4", "--report-pairs", "0", "--prior-scenes", "0", "--threads", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 processes (gloo)" in res.stdout
    ranks = [json.loads((out / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["student_sha256"] == ranks[1]["student_sha256"]  # DDP kept the replicas identical
    assert ranks[0]["data_sha256"] != ranks[1]["data_sha256"]  # ... each on its half of every batch

    one = distill(teacher, TINY_STUDENT, "synthetic", tmp_path / "one",
                  DistillConfig(steps=4, batch_size=4, lr=3e-3, warmup=1, checkpoint_every=4, report_pairs=0,
                                prior_scenes=0, threads=1))
    both = edge_jepa.load(out / "student")
    assert state_digest(both) == ranks[0]["student_sha256"]
    for (k, a), b in zip(one.student.state_dict().items(), both.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), k
    assert np.allclose([r["loss"] for r in _log(out)], [r["loss"] for r in _log(tmp_path / "one")], atol=1e-5)

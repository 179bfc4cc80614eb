"""Self-supervised training: masks, a real run through the CLI, kill -9 + resume, fit on a video, bad data."""

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
from typer.testing import CliRunner

import edge_jepa
from edge_jepa.cli import app
from edge_jepa.data import WorldConfig, render_long_video, write_mp4
from edge_jepa.train.masks import future_mask, multiblock_mask

runner = CliRunner()


def test_masks_partition_the_grid():
    grid = (4, 6, 6)
    ctx, tgt = future_mask(grid, 2)
    assert ctx.tolist() == list(range(72)) and tgt.tolist() == list(range(72, 144))
    rng = np.random.default_rng(0)
    for _ in range(20):
        ctx, tgt = multiblock_mask(grid, rng)
        both = torch.cat([ctx, tgt]).sort().values
        assert torch.equal(both, torch.arange(144)) and len(tgt) > 0 and len(ctx) >= 0.25 * 144
        # targets are tubes: the same spatial cells at every time step
        cells = {int(i) % 36 for i in tgt}
        assert len(tgt) == 4 * len(cells)


def _pretrain_cmd(model_dir, out, steps, extra=()):
    return [sys.executable, "-m", "edge_jepa.cli.main", "pretrain", "--model", str(model_dir), "--out", str(out),
            "--steps", str(steps), "--batch-size", "4", "--checkpoint-every", "5", "--threads", "1", *extra]


def _losses(out):
    return [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]


def test_pretrain_kill_and_resume_matches_uninterrupted(tiny_model_dir, tmp_path):
    straight = tmp_path / "straight"
    subprocess.run(_pretrain_cmd(tiny_model_dir, straight, 30), check=True, capture_output=True, timeout=240)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_pretrain_cmd(tiny_model_dir, killed, 30), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait for a checkpoint past step 10, then kill -9 mid-run
        if (killed / "loss.jsonl").exists() and any(r["step"] >= 15 for r in _losses(killed)):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "model").exists(), "the run finished before it could be killed"
    subprocess.run(_pretrain_cmd(tiny_model_dir, killed, 30, ["--resume"]), check=True, capture_output=True,
                   timeout=240)

    a, b = edge_jepa.load(straight / "model"), edge_jepa.load(killed / "model")
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(x, y, atol=1e-6), k
    steps = [r["step"] for r in _losses(killed)]
    assert steps == sorted(set(steps)) and steps[-1] == 30  # the curve continues, no repeated steps
    assert np.allclose([r["loss"] for r in _losses(killed)], [r["loss"] for r in _losses(straight)], atol=1e-6)
    card = json.loads((killed / "model" / "card.json").read_text())
    assert card["training"]["steps"] == 30 and "pretrain" in card["training"]["command"]


def test_pretrain_refuses_to_overwrite_and_names_bad_data(tiny_model_dir, tmp_path):
    res = runner.invoke(app, ["pretrain", "--model", str(tiny_model_dir), "--out", str(tmp_path / "r"), "--steps",
                              "2", "--batch-size", "2", "--data", str(tmp_path)])
    assert res.exit_code == 2 and "no video files" in res.output
    res = runner.invoke(app, ["pretrain", "--model", str(tiny_model_dir), "--out", str(tmp_path / "r"), "--steps",
                              "2", "--batch-size", "2", "--data", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "missing: no such file or directory" in res.output
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    res = runner.invoke(app, ["pretrain", "--model", str(tiny_model_dir), "--out", str(tmp_path / "r"), "--steps",
                              "2", "--batch-size", "2", "--data", str(tmp_path / "broken.mp4")])
    assert res.exit_code == 2 and "broken.mp4" in res.output


def test_pretrain_sets_the_tubelet_of_a_fresh_config_only(tiny_model_dir, tmp_path):
    res = runner.invoke(app, ["pretrain", "--model", "vit_pico", "--tubelet", "1", "--frames", "4",
                              "--context-frames", "3", "--size", "32", "--out", str(tmp_path / "r"), "--steps", "2",
                              "--batch-size", "2", "--threads", "1"])
    assert res.exit_code == 0, res.output
    model = edge_jepa.load(tmp_path / "r" / "model")
    assert model.config.encoder.tubelet_size == 1 and model.token_grid() == (4, 2, 2)
    assert model.surprise_indices()[1].tolist() == list(range(12, 16))  # the last frame is the target
    res = runner.invoke(app, ["pretrain", "--model", str(tiny_model_dir), "--tubelet", "1", "--out",
                              str(tmp_path / "r2"), "--steps", "2"])
    assert res.exit_code == 2 and "tubelets of 2 frames" in res.output and "fresh config" in res.output


def test_fit_on_a_video_written_by_the_test(tiny_model_dir, tmp_path):
    scene = render_long_video(5, 8.0, WorldConfig(size=64, fps=10.0))
    video = write_mp4(scene.frames, tmp_path / "scene.mp4", 10.0)
    out = tmp_path / "fitted"
    res = runner.invoke(app, ["fit", "--source", str(video), "--out", str(out), "--model", str(tiny_model_dir),
                              "--steps", "6", "--batch-size", "4", "--minutes", "2"])
    assert res.exit_code == 0, res.output
    fitted, base = edge_jepa.load(out), edge_jepa.load(tiny_model_dir)
    assert fitted.config == base.config
    changed = [not torch.equal(a, b) for a, b in zip(fitted.state_dict().values(), base.state_dict().values(),
                                                     strict=True)]
    assert any(changed)
    scores = edge_jepa.surprise_scores(fitted, scene.frames)
    assert np.isfinite(scores[3:]).all()


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_sigterm_saves_a_checkpoint(tiny_model_dir, tmp_path):
    out = tmp_path / "term"
    proc = subprocess.Popen(_pretrain_cmd(tiny_model_dir, out, 100000), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "loss.jsonl").exists() and _losses(out)):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] >= 10


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tiny_model, tmp_path, monkeypatch):
    import errno

    from edge_jepa.io import CheckpointWriteError
    from edge_jepa.train.data import SyntheticSource
    from edge_jepa.train.pretrain import CHECKPOINT, PretrainConfig, Trainer

    trainer = Trainer(tiny_model, SyntheticSource(tiny_model.config.clip), tmp_path,
                      PretrainConfig(steps=2, batch_size=2, checkpoint_every=1))
    trainer.train_step()
    trainer.save_checkpoint()
    good = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    trainer.train_step()
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        with open(f, "r+b") as fh:  # part of the bytes made it, then the disk filled up
            fh.truncate(fh.seek(0, 2) // 2)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointWriteError, match="step 2: No space left on device; the previous checkpoint"):
        trainer.save_checkpoint()
    monkeypatch.undo()
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["step"] == 1 == good["step"]
    assert all(torch.equal(state["model"][k], v) for k, v in good["model"].items())
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT]  # no temp file left behind


def test_progress_follows_the_time_budget_when_it_ends_the_run_first():
    """`fit --minutes 5` caps steps at 100,000: its bar must follow the clock, not the unreachable cap."""
    from edge_jepa.cli.train_commands import _share_done
    from edge_jepa.train.pretrain import PretrainConfig

    steps_only = PretrainConfig(steps=200)
    assert _share_done(50, 600.0, steps_only) == 0.25
    budget = PretrainConfig(steps=100_000, max_minutes=5.0)
    assert _share_done(120, 150.0, budget) == 0.5  # half the time spent, a sliver of the step cap
    assert _share_done(90_000, 30.0, budget) == 0.9  # steps run out first
    assert _share_done(120, 400.0, budget) == 1.0


def test_pretrain_under_torchrun_equals_one_process_and_trains_frame_causal_models(tiny_model_dir, tmp_path):
    """2 ranks (gloo) each take half of every batch; DDP averages the gradients, so the weights equal a one-process
    run on the whole batch. A frame-causal model trains the same way."""
    from safetensors.torch import load_file

    from tests.test_world_model import WORLD_TINY

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    torchrun = [str(Path(sys.executable).with_name("torchrun")), "--nproc_per_node", "2", "--standalone"]
    flags = ["pretrain", "--steps", "3", "--batch-size", "4", "--threads", "1", "--checkpoint-every", "2"]

    def run(launcher: list[str], model: Path, out: Path) -> None:
        res = subprocess.run([*launcher, "-m", "edge_jepa.cli.main", *flags, "--model", str(model), "--out", str(out)],
                             capture_output=True, text=True, timeout=300, env=env)
        assert res.returncode == 0, res.stderr[-3000:]

    run([sys.executable], tiny_model_dir, tmp_path / "one")
    run(torchrun, tiny_model_dir, tmp_path / "ddp")
    one, ddp = (load_file(tmp_path / r / "model" / "model.safetensors") for r in ("one", "ddp"))
    assert one.keys() == ddp.keys()
    for k in one:
        torch.testing.assert_close(ddp[k], one[k], atol=1e-5, rtol=1e-4, msg=k)
    card = json.loads((tmp_path / "ddp" / "model" / "card.json").read_text())
    assert card["training"]["processes"] == 2 and card["training"]["steps"] == 3
    logs = [[json.loads(line) for line in (tmp_path / r / "loss.jsonl").read_text().splitlines()]
            for r in ("one", "ddp")]
    assert [e["step"] for e in logs[1]] == [e["step"] for e in logs[0]]  # rank 0 alone writes it: no duplicates
    assert [e["loss"] for e in logs[1]] == pytest.approx([e["loss"] for e in logs[0]], rel=1e-4)  # rank mean

    edge_jepa.create(WORLD_TINY, seed=0).save(tmp_path / "world")
    run(torchrun, tmp_path / "world", tmp_path / "world-ddp")
    trained = edge_jepa.load(tmp_path / "world-ddp" / "model")
    assert trained.config.kind == "frame_causal" and trained.num_params() == edge_jepa.create(WORLD_TINY).num_params()


def test_mixed_precision_trains_on_the_cpu_and_a_missing_gpu_is_one_clear_error(tiny_model_dir, tmp_path):
    from tests.test_world_model import WORLD_TINY

    edge_jepa.create(WORLD_TINY, seed=0).save(tmp_path / "world")
    for model in (tiny_model_dir, tmp_path / "world"):  # window and frame-causal: bfloat16 autocast, CPU
        out = tmp_path / f"amp-{model.name}"
        res = CliRunner().invoke(app, ["pretrain", "--model", str(model), "--steps", "2", "--batch-size", "2",
                                       "--threads", "1", "--amp", "--out", str(out)])
        assert res.exit_code == 0, res.output
        card = json.loads((out / "model" / "card.json").read_text())
        assert card["training"]["config"]["amp"] is True and np.isfinite(card["training"]["final_loss"])
        assert edge_jepa.load(out / "model").encoder.patch_embed.proj.weight.dtype == torch.float32
    if not torch.cuda.is_available():  # (on a machine with a GPU, --device cuda would train there)
        res = CliRunner().invoke(app, ["pretrain", "--model", str(tiny_model_dir), "--steps", "1", "--device",
                                       "cuda", "--out", str(tmp_path / "gpu")])
        assert res.exit_code != 0 and "no CUDA device" in res.output and "Traceback" not in res.output

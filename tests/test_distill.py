"""Distillation: grid alignment, losses/cache, bad input, disk full, video data, the saved student."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import edge_jepa
from edge_jepa.cli import app
from edge_jepa.data import WorldConfig, render_long_video, write_mp4
from edge_jepa.distill import CheckpointWriteError, DistillConfig, Distiller, DistillError, plan
from edge_jepa.distill.data import state_digest
from edge_jepa.distill.trainer import CHECKPOINT
from edge_jepa.models.config import EncoderConfig, ModelConfig, PredictorConfig
from edge_jepa.train.data import SyntheticSource
from tests.conftest import TINY

runner = CliRunner()

# A student half the teacher's width; and a bigger-clip teacher for smaller-clip students.
STUDENT = ModelConfig(
    name="test-student",
    encoder=EncoderConfig(width=16, depth=1, heads=2),
    predictor=PredictorConfig(width=16, depth=1, heads=2, num_mask_tokens=2),
    clip=TINY.clip,
)
TEACHER_64 = TINY.replace(name="test-teacher-64", clip=dict(frames=8, size=64, context_frames=4))


def _cfg(**kw) -> DistillConfig:
    base = dict(steps=6, batch_size=4, lr=3e-3, warmup=1, checkpoint_every=3, report_pairs=1, report_clips=2,
                threads=1)
    return DistillConfig(**(base | kw))


def _grid_values(grid):
    t, h, w = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) for n in grid), indexing="ij")
    return torch.stack([t, h, w], -1).reshape(1, -1, 3)  # [1, N, 3]: each token's own (t, h, w)


def test_alignment_maps_clips_grids_and_masks_explicitly():
    student = STUDENT.replace(clip=dict(frames=4, size=32, context_frames=2))
    a = plan(TEACHER_64, student, stride=2)
    assert (a.teacher_clip.frames, a.teacher_clip.size, a.teacher_clip.fps) == (8, 64, 20.0)
    assert a.teacher_clip.context_frames == 4 and a.teacher_grid == (4, 4, 4) and a.student_grid == (2, 2, 2)

    # clips: every 2nd teacher frame, resized to the student size
    frames = np.zeros((1, 8, 64, 64, 3), np.uint8)
    frames[0, :, :, :, 0] = np.arange(8)[:, None, None] * 30
    view = a.student_view(frames)
    assert view.shape == (1, 4, 32, 32, 3) and view[0, :, 0, 0, 0].tolist() == [0, 60, 120, 180]

    # pool: each student token is the mean of the 2x2x2 teacher block under it
    pooled = a.tokens(_grid_values(a.teacher_grid))
    assert torch.allclose(pooled[0, 0], torch.tensor([0.5, 0.5, 0.5]))
    assert torch.allclose(pooled[0, -1], torch.tensor([2.5, 2.5, 2.5]))
    interp = plan(TEACHER_64, student, stride=2, mode="interpolate").tokens(_grid_values(a.teacher_grid))
    assert torch.allclose(interp, pooled)  # at exactly 2x, trilinear at student centres == block mean

    # masks: the student's future target (last tubelet) is the teacher's last two tubelets
    ctx, tgt = a.teacher_mask(torch.arange(4, 8))
    assert tgt.tolist() == list(range(32, 64)) and ctx.tolist() == list(range(32))
    # a spatial tube (student cell (0, 1) at every time) -> the 2x2 teacher cells under it, at every time
    ctx, tgt = a.teacher_mask(torch.tensor([1, 5]))
    assert sorted({int(i) % 16 for i in tgt}) == [2, 3, 6, 7] and len(tgt) == 16
    # values defined only on teacher targets: masked mean onto the student targets
    values = _grid_values(a.teacher_grid)[:, tgt]
    out = a.targets(values, tgt, torch.tensor([1, 5]))
    assert torch.allclose(out[0], torch.tensor([[0.5, 0.5, 2.5], [2.5, 0.5, 2.5]]))


def test_non_integer_ratio_pools_with_overlap_and_interpolates():
    student = STUDENT.replace(clip=dict(frames=4, size=48, context_frames=2))
    a = plan(TEACHER_64, student)  # teacher 64 px -> grid (2, 4, 4), student (2, 3, 3)
    x = _grid_values(a.teacher_grid)
    for mode in ("pool", "interpolate"):
        out = plan(TEACHER_64, student, mode=mode).tokens(x)
        assert out.shape == (1, 18, 3)
        assert torch.allclose(out[0, 4], torch.tensor([0.0, 1.5, 1.5]))  # the centre cell, both modes
    _, tgt = a.teacher_mask(torch.tensor([4]))  # student centre cell at t=0: teacher cells whose centre is in it
    assert sorted(tgt.tolist()) == [5, 6, 9, 10]


def test_incompatible_patch_or_tubelet_is_a_clear_error(tmp_path, tiny_model_dir):
    for field, value in (("patch_size", 8), ("tubelet_size", 4)):
        bad = STUDENT.replace(encoder={field: value}, clip=dict(frames=8, context_frames=4))
        with pytest.raises(DistillError, match=field.replace("_", " ")) as e:
            plan(TINY, bad)
        assert "test-tiny" in str(e.value) and str(value) in str(e.value)
    spec = tmp_path / "student.json"
    spec.write_text(json.dumps(STUDENT.replace(encoder={"patch_size": 8}).to_dict()))
    res = runner.invoke(app, ["distill", "--teacher", str(tiny_model_dir), "--student", str(spec), "--out",
                              str(tmp_path / "run"), "--steps", "2"])
    assert res.exit_code == 2 and "incompatible patch sizes: 16 vs 8" in res.output
    with pytest.raises(DistillError, match="smaller than the student"):
        plan(TINY, STUDENT.replace(clip=dict(size=64)), teacher_size=32)


def test_video_folder_without_clips_is_a_clear_error(tmp_path, tiny_model_dir):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "notes.txt").write_text("not a video")
    res = runner.invoke(app, ["distill", "--teacher", str(tiny_model_dir), "--out", str(tmp_path / "r"),
                              "--data", str(videos), "--steps", "2"])
    assert res.exit_code == 2 and "no video files" in res.output
    short = render_long_video(1, 0.5, WorldConfig(size=32, fps=10.0)).frames[:2]  # 2 frames: shorter than a clip
    write_mp4(short, videos / "short.mp4", 10.0)
    res = runner.invoke(app, ["distill", "--teacher", str(tiny_model_dir), "--out", str(tmp_path / "r"),
                              "--data", str(videos), "--steps", "2"])
    assert res.exit_code == 2 and "no video yields a clip of 8 frames" in res.output  # vit_nano's clip


def test_distill_on_a_video_folder_saves_a_loadable_scoring_student(tmp_path, tiny_model_dir, one_inference_thread):
    videos = tmp_path / "videos"
    scene = render_long_video(3, 6.0, WorldConfig(size=48, fps=10.0))
    write_mp4(scene.frames, videos / "scene.mp4", 10.0)
    spec = tmp_path / "student.json"
    spec.write_text(json.dumps(STUDENT.to_dict()))
    out = tmp_path / "run"
    res = runner.invoke(app, ["distill", "--teacher", str(tiny_model_dir), "--student", str(spec), "--data",
                              str(videos), "--out", str(out), "--steps", "6", "--batch-size", "4",
                              "--checkpoint-every", "3", "--report-pairs", "1", "--report-clips", "2",
                              "--threads", "1", "--json", str(tmp_path / "fidelity.json")])
    assert res.exit_code == 0, res.output
    assert "surprise AUROC" in res.output and "token cosine" in res.output

    student = edge_jepa.load(out / "student")  # an ordinary edge-jepa model
    assert student.config == STUDENT and student.num_params() < edge_jepa.load(tiny_model_dir).num_params()
    scores = edge_jepa.surprise_scores(student, scene.frames[:20])
    assert np.isfinite(scores[3:]).all() and np.isnan(scores[:3]).all()
    card = json.loads((out / "student" / "card.json").read_text())["distillation"]
    assert card["steps"] == 6 and "1 video(s)" in card["data"] and card["teacher"] == "test-tiny"
    report = json.loads((tmp_path / "fidelity.json").read_text())
    for key in ("token_cosine", "surprise_spearman_windows", "teacher_auroc", "student_auroc", "auroc_ratio"):
        assert isinstance(report[key], float)
    assert report["student"]["params"] == student.num_params() and report["teacher"]["gflops"] > 0
    reports = [json.loads(line) for line in (out / "reports.jsonl").read_text().splitlines()]
    assert [r["step"] for r in reports] == [3, 6]  # at the checkpoint and at the end
    steps = [json.loads(line)["step"] for line in (out / "loss.jsonl").read_text().splitlines()]
    assert steps == [6]  # logged every 10 steps and at the end


def test_smaller_student_clip_learns_the_teacher(tmp_path, one_inference_thread):
    teacher = edge_jepa.create(TEACHER_64, seed=1).eval()
    student_cfg = STUDENT.replace(clip=dict(frames=4, size=32, context_frames=2))
    cfg = _cfg(steps=40, batch_size=8, checkpoint_every=40, frame_stride=2, report_pairs=1, report_clips=4)
    run = Distiller(teacher, edge_jepa.create(student_cfg, seed=0), SyntheticSource(plan(TEACHER_64, student_cfg,
                    stride=2).teacher_clip), tmp_path / "run", cfg)
    before = run.report()
    result = run.run()
    assert result.steps_done == 40 and result.student.config == student_cfg
    after = result.report
    assert after["token_cosine"] > before["token_cosine"] + 0.1  # it learns the (aligned) teacher tokens
    losses = result.losses
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:5])
    assert after["teacher"]["name"] == "test-teacher-64"


def test_cached_teacher_gives_the_same_run_as_live(tmp_path, tiny_model, one_inference_thread):
    def run(out, **kw):
        d = Distiller(tiny_model, edge_jepa.create(STUDENT, seed=0), SyntheticSource(TINY.clip), out,
                      _cfg(report_pairs=0, **kw))
        return d.run(), d

    live, _ = run(tmp_path / "live")
    cached, d = run(tmp_path / "cached", cache_teacher=True, cache_batches=6)
    shards = sorted((tmp_path / "cached" / "teacher_cache").glob("batch_*.safetensors"))
    assert len(shards) == 6
    assert state_digest(live.student) == state_digest(cached.student)
    assert np.allclose(live.losses, cached.losses)
    # a cache built for another setting is refused, not silently reused
    with pytest.raises(DistillError, match="another setting"):
        Distiller(tiny_model, edge_jepa.create(STUDENT, seed=0), SyntheticSource(TINY.clip), tmp_path / "cached2",
                  _cfg(cache_teacher=True, cache_batches=6, seed=3, report_pairs=0,
                       cache_dir=str(tmp_path / "cached" / "teacher_cache"))).run()


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, tiny_model, monkeypatch,
                                                                      one_inference_thread):
    out = tmp_path / "run"
    d = Distiller(tiny_model, edge_jepa.create(STUDENT, seed=0), SyntheticSource(TINY.clip), out,
                  _cfg(steps=3, report_pairs=0))
    d.run()
    good = torch.load(out / CHECKPOINT, weights_only=True)
    assert good["step"] == 3

    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        with open(f, "r+b") as fh:  # half the bytes made it, then the disk filled up
            fh.truncate(max(1, fh.seek(0, 2) // 2))
        raise OSError(errno.ENOSPC, "No space left on device")

    d2 = Distiller(tiny_model, edge_jepa.create(STUDENT, seed=0), SyntheticSource(TINY.clip), out,
                   _cfg(steps=6, checkpoint_every=3, report_pairs=0))
    assert d2.load_checkpoint() and d2.step == 3
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointWriteError, match="No space left on device.*previous checkpoint is intact"):
        d2.run()
    monkeypatch.undo()
    state = torch.load(out / CHECKPOINT, weights_only=True)  # still the step-3 checkpoint, whole
    assert state["step"] == 3
    assert all(torch.equal(state["heads"][k], v) for k, v in good["heads"].items())
    assert not list(out.glob(".checkpoint.pt.*"))  # no temp file left behind


def test_bad_settings_are_clear_errors(tmp_path, tiny_model):
    with pytest.raises(DistillError, match="does not split over"):
        from edge_jepa.train.dist import DistContext

        Distiller(tiny_model, edge_jepa.create(STUDENT), SyntheticSource(TINY.clip), tmp_path, _cfg(batch_size=3),
                  ctx=DistContext(rank=0, world=2))
    with pytest.raises(ValueError, match="all loss weights are 0"):
        from edge_jepa.distill import LossWeights

        LossWeights(0, 0, 0, 0, 0)
    with pytest.raises(DistillError, match="unknown student 'vit_bogus'"):
        from edge_jepa.distill import student_config

        student_config("vit_bogus")


def test_vit_nano_is_a_tenth_of_the_window_model():
    window, nano = edge_jepa.load("window"), edge_jepa.create("vit_nano")
    assert nano.num_params() <= window.num_params() / 10
    a = plan(window.config, nano.config)  # same token grid, frame rate and surprise layout: no resampling
    assert a.identity and a.teacher_clip == window.config.clip == nano.config.clip


def test_time_budget_stops_cleanly_with_checkpoint_report_and_student(tmp_path, tiny_model, one_inference_thread):
    out = tmp_path / "budget"
    d = Distiller(tiny_model, edge_jepa.create(STUDENT, seed=0), SyntheticSource(TINY.clip), out,
                  _cfg(steps=1000, max_minutes=0.0))
    result = d.run()
    assert result.stopped_early and result.steps_done == 1 and result.report["step"] == 1
    assert torch.load(out / CHECKPOINT, weights_only=True)["step"] == 1
    card = json.loads((out / "student" / "card.json").read_text())["distillation"]
    assert card["stopped_by_time_budget"] and card["fidelity"]["step"] == 1

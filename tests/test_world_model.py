"""The frame-causal world model: causality, cached stream step, frame rates, training, persistence."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import edge_jepa
from edge_jepa.cli import app
from edge_jepa.data.synthetic import WorldConfig, generate_clip
from edge_jepa.models.config import ClipConfig, EncoderConfig, ModelConfig, PredictorConfig
from edge_jepa.models.world import FrameCausalJEPA, block_causal_mask, frame_times, token_surprise
from edge_jepa.surprise import FrameCausalScorer, SurpriseScorer, frame_to_input, surprise_scores
from edge_jepa.train.pretrain import PretrainConfig
from edge_jepa.train.world import FrameCausalTrainer, MultiRateSource, WorldLoss, sigreg, world_loss

ROOT = Path(__file__).resolve().parents[1]
WORLD_TINY = ModelConfig(
    name="test-world-tiny",
    encoder=EncoderConfig(width=32, depth=1, heads=2, tubelet_size=1),
    predictor=PredictorConfig(width=32, depth=2, heads=2, num_mask_tokens=1),
    clip=ClipConfig(frames=4, size=32, fps=30.0, context_frames=3, preprocess="resize"),
    kind="frame_causal",
)


@pytest.fixture
def world_model():
    return edge_jepa.create(WORLD_TINY, seed=0).eval()


def _clip(seed: int = 3, frames: int = 12, fps: float = 30.0) -> np.ndarray:
    return generate_clip(seed, WorldConfig(size=32, num_frames=frames, fps=fps)).frames


def test_config_kind_is_checked_and_round_trips():
    assert ModelConfig.from_dict(WORLD_TINY.to_dict()) == WORLD_TINY
    assert ModelConfig.from_dict({k: v for k, v in WORLD_TINY.to_dict().items() if k != "kind"}).kind == "window"
    with pytest.raises(ValueError, match="kind must be one of"):
        WORLD_TINY.replace(kind="causal")
    with pytest.raises(ValueError, match="tubelet_size 1"):
        WORLD_TINY.replace(encoder={"tubelet_size": 2})
    assert isinstance(edge_jepa.create("world_pico"), FrameCausalJEPA)


def test_predictions_of_frame_t_do_not_see_later_frames(world_model):
    torch.manual_seed(0)
    clip = torch.randn(2, 3, 4, 32, 32)
    _, pred, log_b = world_model(clip)
    assert pred.shape == (2, 4, 4, 32) and log_b.shape == (2, 4, 4)
    changed = clip.clone()
    changed[:, :, 2:] = torch.randn_like(changed[:, :, 2:])  # frames 2 and 3 change
    _, pred2, _ = world_model(changed)
    assert torch.allclose(pred[:, :2], pred2[:, :2], atol=1e-5)  # outputs 0, 1 only see frames 0, 1
    assert not torch.allclose(pred[:, 2:], pred2[:, 2:], atol=1e-3)
    mask = block_causal_mask(3, 2)
    assert mask[0, :2].all() and not mask[0, 2:].any() and mask[5].all()


def test_frames_sit_at_their_true_times():
    assert frame_times(3, 30.0).tolist() == [0.0, 1.0, 2.0]
    assert frame_times(3, 10.0).tolist() == pytest.approx([0.0, 3.0, 6.0])


def _count_encoded_frames(model, monkeypatch) -> dict[str, int]:
    """Counts the frames `model.encode_frames` encodes from now on (in calls["n"])."""
    calls = {"n": 0}
    encode = model.encode_frames

    def counting(clip, encoder=None):
        calls["n"] += clip.shape[0] * clip.shape[2]
        return encode(clip, encoder)

    monkeypatch.setattr(model, "encode_frames", counting)
    return calls


def test_pushing_frames_equals_the_batched_trace_and_encodes_each_frame_once(world_model, monkeypatch):
    frames = _clip()
    assert isinstance(SurpriseScorer(world_model), FrameCausalScorer)
    scorer = FrameCausalScorer(world_model, cache="kv")
    calls = _count_encoded_frames(world_model, monkeypatch)
    pushed = [scorer.push(f) for f in frames]
    assert calls["n"] == len(frames)  # the cached step: one encoder pass per frame
    rerun = FrameCausalScorer(world_model, cache="rerun")
    assert [r.score for r in (rerun.push(f) for f in frames) if r] == pytest.approx(
        [r.score for r in rerun.trace(frames)], rel=1e-5)
    assert calls["n"] == 3 * len(frames)  # rerun push and trace also encode every frame once
    assert all(r is None for r in pushed[:3]) and all(r is not None for r in pushed[3:])
    monkeypatch.undo()
    batched = surprise_scores(FrameCausalScorer(world_model, cache="kv"), frames)
    assert np.isnan(batched[:3]).all()
    np.testing.assert_allclose([r.score for r in pushed[3:]], batched[3:], rtol=1e-5, atol=1e-6)
    assert pushed[-1].token_errors.shape == (1, 2, 2) and pushed[-1].log_scale.shape == (1, 2, 2)


def test_kv_cache_stream_equals_the_sliding_window_predictor_and_the_rerun_on_the_first_window(world_model):
    frames = _clip(frames=14)
    kv = FrameCausalScorer(world_model, cache="kv", photometric="off")  # the frames as frame_to_input makes them
    x = torch.from_numpy(np.stack([frame_to_input(f, 32, "resize") for f in frames], axis=1))[None]
    with torch.no_grad():
        z = world_model.encode_frames(x)  # [1, 14, N, D]
        full, full_log_b = world_model.predict(z, 30.0)  # sliding block-causal mask of 4 frames over 14
    for f, frame in enumerate(frames):
        kv.push(frame)
        torch.testing.assert_close(kv.next[0], full[0, f], atol=2e-5, rtol=1e-4)  # the prediction of frame f + 1
        torch.testing.assert_close(kv.next[1], full_log_b[0, f], atol=2e-5, rtol=1e-4)
    rerun = FrameCausalScorer(world_model, cache="rerun").trace(frames)
    streamed = FrameCausalScorer(world_model, cache="kv").trace(frames)
    assert [r.frame_index for r in rerun] == [r.frame_index for r in streamed] == list(range(3, 14))
    assert rerun[0].score == pytest.approx(streamed[0].score, rel=1e-4)  # the first window: the same computation
    with pytest.raises(ValueError, match="unknown cache"):
        FrameCausalScorer(world_model, cache="none")


def test_the_frame_rate_changes_the_predictions_and_window_models_refuse_other_rates(world_model, tiny_model):
    frames = _clip()
    a, b = surprise_scores(world_model, frames, fps=30.0), surprise_scores(world_model, frames, fps=10.0)
    assert np.isfinite(a[3:]).all() and not np.allclose(a[3:], b[3:])
    with pytest.raises(ValueError, match="resample"):
        surprise_scores(tiny_model, frames, fps=30.0)  # a 10 fps window model


def test_scorings_rank_token_errors_as_documented():
    err = torch.tensor([[0.1, 0.1, 0.9]])
    flat = torch.zeros(1, 3)
    assert float(token_surprise(err, flat, "mean")) == pytest.approx(1.1 / 3)
    assert float(token_surprise(err, flat, "max")) == pytest.approx(0.9)
    confident = torch.tensor([[0.0, 0.0, -2.0]])  # the model expected small errors on the third token
    assert float(token_surprise(err, confident, "zmax")) > float(token_surprise(err, flat, "zmax"))
    with pytest.raises(ValueError, match="unknown scoring"):
        token_surprise(err, flat, "median")
    with pytest.raises(ValueError, match="unknown scoring"):
        FrameCausalScorer(edge_jepa.create(WORLD_TINY), scoring="median")


def test_saved_model_loads_back_as_frame_causal(world_model, tmp_path):
    world_model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "edge_jepa.json").read_text())
    assert meta["config"]["kind"] == "frame_causal"
    loaded = edge_jepa.load(tmp_path / "m")
    assert isinstance(loaded, FrameCausalJEPA)
    frames = _clip()
    np.testing.assert_allclose(surprise_scores(str(tmp_path / "m"), frames), surprise_scores(world_model, frames))


def test_sigreg_is_small_for_gaussian_tokens_and_large_for_collapsed_ones():
    g = torch.Generator().manual_seed(0)
    gaussian = torch.randn(512, 16, generator=g)
    collapsed = torch.ones(512, 16) * 0.3
    assert sigreg(gaussian, 32, torch.Generator().manual_seed(1)) < 0.1 * sigreg(collapsed, 32,
                                                                                  torch.Generator().manual_seed(1))


@pytest.mark.parametrize("loss", [WorldLoss(), WorldLoss(change_floor=None), WorldLoss(rollout=1),
                                  WorldLoss(sigreg=0.1)])
def test_every_loss_option_trains_the_predictor(world_model, loss):
    world_model.train()
    target = FrameCausalJEPA(WORLD_TINY).encoder.eval().requires_grad_(False)
    clip = torch.randn(2, 3, 4, 32, 32)
    total, parts = world_loss(world_model, target, clip, 30.0, loss, torch.Generator().manual_seed(0))
    total.backward()
    assert torch.isfinite(total) and "pred" in parts and "nll" in parts
    assert world_model.predictor.proj.weight.grad.abs().sum() > 0
    assert world_model.predictor.log_scale.weight.grad.abs().sum() > 0
    assert ("rollout" in parts) == (loss.rollout > 0) and ("sigreg" in parts) == (loss.sigreg > 0)


def test_multi_rate_source_is_deterministic_and_uses_every_rate():
    src = MultiRateSource(WORLD_TINY.clip, seed=0, rates=(10.0, 30.0))
    a, fa = src.batch(5, 2)
    b, fb = src.batch(5, 2)
    assert fa == fb and np.array_equal(a, b) and a.shape == (2, 4, 32, 32, 3)
    assert {src.rate(s) for s in range(20)} == {10.0, 30.0}
    with pytest.raises(ValueError, match="positive"):
        MultiRateSource(WORLD_TINY.clip, rates=(0.0,))
    long, _ = MultiRateSource(WORLD_TINY.clip, seed=0, frames=9).batch(0, 2)  # clips longer than the window
    assert long.shape == (2, 9, 32, 32, 3)


def test_training_on_clips_longer_than_the_window_uses_the_sliding_mask(world_model):
    clip = torch.randn(1, 3, 9, 32, 32)
    _, pred, _ = world_model(clip)
    changed = clip.clone()
    changed[:, :, 0] = 0.0
    _, pred2, _ = world_model(changed)
    # each of the 2 blocks looks 3 frames back (window 4): output t sees frames t - 6 .. t, so frame 0 reaches
    # outputs 0..6 and not 7, 8
    assert torch.allclose(pred[:, 7:], pred2[:, 7:], atol=1e-5) and not torch.allclose(pred[:, 6], pred2[:, 6])


def test_training_resumes_exactly_and_the_loss_falls(tmp_path):
    cfg = PretrainConfig(steps=6, batch_size=4, lr=3e-3, warmup=1, checkpoint_every=3, log_every=1, seed=0)

    def trainer(out: Path, steps: int) -> FrameCausalTrainer:
        torch.manual_seed(0)
        model = edge_jepa.create(WORLD_TINY, seed=0)
        c = PretrainConfig(**{**cfg.__dict__, "steps": steps})
        return FrameCausalTrainer(model, MultiRateSource(WORLD_TINY.clip, 0), out, c)

    straight = trainer(tmp_path / "a", 6).run()
    def interrupt(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt  # as Ctrl-C: the trainer saves a checkpoint at step 3

    with pytest.raises(KeyboardInterrupt):
        trainer(tmp_path / "b", 6).run(interrupt)
    resumed = trainer(tmp_path / "b", 6)
    assert resumed.load_checkpoint() and resumed.step == 3
    result = resumed.run()
    assert result.losses == pytest.approx(straight.losses, rel=1e-5)
    for (k, v), w in zip(straight.model.state_dict().items(), result.model.state_dict().values(), strict=True):
        assert torch.allclose(v, w, atol=1e-6), k
    assert isinstance(result.model, FrameCausalJEPA) and not result.model.training
    assert np.mean(result.losses[-2:]) < np.mean(result.losses[:2])


def test_pretrain_command_trains_a_frame_causal_model(tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["pretrain", "--model", "world_pico", "--steps", "2", "--batch-size", "2",
                                 "--threads", "1", "--rates", "15,30", "--rollout", "1", "--clip-frames", "10",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    card = json.loads((out / "model" / "card.json").read_text())
    assert card["training"]["config"]["rates"] == [15.0, 30.0]
    assert card["training"]["config"]["world_loss"]["rollout"] == 1
    assert card["training"]["config"]["clip_frames"] == 10
    assert isinstance(edge_jepa.load(out / "model"), FrameCausalJEPA)
    bad = CliRunner().invoke(app, ["pretrain", "--model", "world_pico", "--data", str(tmp_path), "--steps", "1",
                                   "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "synthetic world only" in bad.output


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_world_model_eval_scores_every_variant_next_to_the_baselines(world_model, tiny_model_dir, tmp_path):
    world_model.save(tmp_path / "w")
    out = tmp_path / "eval.json"
    _bench("world_model_eval").main(["--model", str(tmp_path / "w"), "--model", str(tiny_model_dir), "--fps", "30",
                                     "10", "--pairs-per-type", "1", "--cache", "kv", "rerun", "--json", str(out)])
    report = json.loads(out.read_text())
    assert [r["fps"] for r in report["reports"]] == [30.0, 10.0]
    names = set(report["reports"][0]["variants"])
    assert {"test-world-tiny(w):max", "test-world-tiny(w):zmax", "test-world-tiny(w):max[rerun]",
            "test-tiny(tiny):mean", "test-tiny(tiny):max",
            "frame_difference", "linear_extrapolation"} <= names
    assert report["reports"][0]["pairs"] == 7
    assert {"test-world-tiny(w):scene_excess", "test-world-tiny(w):scene_z[rerun]"} <= names


def test_scene_relative_scores_wait_for_the_scene_and_subtract_its_per_token_mean():
    from edge_jepa.surprise import SurpriseResult

    errors = [np.array([0.1, 0.2]), np.array([0.3, 0.2]), np.array([0.2, 0.2]), np.array([0.2, 0.9])]
    results = [SurpriseResult(i + 3, 0.0, e.reshape(1, 1, 2)) for i, e in enumerate(errors)]
    rel = _bench("world_model_eval").scene_relative(results, 8, floor=0.05, min_frames=3)
    assert np.isnan(rel["scene_excess"][:6]).all() and np.isnan(rel["scene_excess"][7])
    assert rel["scene_excess"][6] == pytest.approx(0.7)  # token 1: 0.9 - mean(0.2, 0.2, 0.2)
    assert rel["scene_z"][6] == pytest.approx(0.7 / 0.05)  # its spread is 0: the floor


def test_predictor_vs_copy_measures_a_frame_causal_model(world_model, tmp_path):
    world_model.save(tmp_path / "w")
    report = _bench("predictor_vs_copy").measure(str(tmp_path / "w"), pairs_per_type=1)
    assert report["model"] == "test-world-tiny" and report["clips"] == 7
    total = sum(k["tokens"] for k in report["kinds"].values())
    assert total == 7 * (4 * 2 + 4 - 3) * 4  # every predicted frame (clip of 2 windows + 4 frames) x 4 tokens


def test_demo_scores_a_frame_causal_model_at_the_rate_it_is_given(world_model, tmp_path, tiny_model):
    from edge_jepa.demo import run_demo

    outputs = run_demo(world_model, tmp_path / "demo", seconds=30.0, fps=10.0, render_size=64)
    report = outputs.report
    assert report["fps"] == 10.0 and report["frames"] == 300 and report["model"] == "test-world-tiny"
    assert report["detected"].endswith("/5") and outputs.video.exists() and outputs.plot.exists()
    with pytest.raises(ValueError, match="window model"):
        run_demo(tiny_model, tmp_path / "demo2", seconds=30.0, fps=30.0)  # a 10 fps window model


def test_the_analytic_flops_of_a_kv_update_match_torch_s_count():
    from torch.utils.flop_counter import FlopCounterMode

    model = edge_jepa.create("world_pico").eval()
    gh, gw = model.token_grid()
    n = gh * gw
    with torch.no_grad():
        z = model.encode_frames(torch.randn(1, 3, 7, 64, 64))
        cache = None
        for t in range(7):  # a full cache of window - 1 frames
            _, _, cache = model.predictor.step(z[:, t], 1.0, (gh, gw), cache)
        with FlopCounterMode(display=False) as counter:
            new = model.encode_frames(torch.randn(1, 3, 1, 64, 64))[:, 0]
            model.predictor.step(new, 1.0, (gh, gw), cache)
    analytic = model.flops_per_update()
    assert cache[0][0].shape[2] == 7 * n
    # torch counts matmuls and attention; the analytic count also has them all (elementwise ops are left out)
    assert counter.get_total_flops() == pytest.approx(analytic["kv"], rel=0.03)
    assert analytic["kv"] < analytic["rerun"] / 3


def test_watch_scores_a_video_file_with_a_frame_causal_model_at_the_file_s_rate(world_model, tmp_path, monkeypatch):
    from edge_jepa.data.synthetic import render_long_video, write_mp4
    from edge_jepa.stream import StreamLoop, open_source, watch
    from edge_jepa.video import read_video

    path = write_mp4(render_long_video(11, 3.0, WorldConfig(size=64, fps=15.0)).frames, tmp_path / "scene.mp4",
                     15.0)  # a 15 fps camera: the model (30 fps by default) takes it at 15 fps
    frames = read_video(path).frames
    encoded = _count_encoded_frames(world_model, monkeypatch)
    loop = StreamLoop(world_model, open_source(str(path), realtime=False))
    assert loop.fps == 15.0 and loop.causal
    with loop:
        list(loop)
    trace = loop.trace()
    assert encoded["n"] == len(frames) == 45  # every frame through the encoder exactly once
    monkeypatch.undo()
    offline = surprise_scores(FrameCausalScorer(world_model, fps=15.0, cache="rerun"), frames)
    np.testing.assert_allclose(trace["score"], offline[3:], rtol=1e-4, atol=1e-6)  # the same step, offline

    with pytest.warns(RuntimeWarning, match="calibration"):  # 3 s: scored, too short to calibrate events
        summary = watch(str(path), model=world_model, out=tmp_path / "out", headless=True)
    assert summary.model == "test-world-tiny" and summary.backend == "eager/fp32"
    assert summary.stats.windows_scored == len(frames) - 3
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["model"] == "test-world-tiny"


def test_a_residual_predictor_starts_as_the_copy_and_streams_like_the_plain_one():
    cfg = WORLD_TINY.replace(predictor={"residual": True})
    model = edge_jepa.create(cfg, seed=0).eval()
    torch.nn.init.zeros_(model.predictor.proj.weight)
    torch.nn.init.zeros_(model.predictor.proj.bias)
    with torch.no_grad():
        z, pred, _ = model(torch.randn(1, 3, 6, 32, 32))
    torch.testing.assert_close(pred, torch.nn.functional.layer_norm(z, z.shape[-1:]))  # "copy the last frame"
    model = edge_jepa.create(cfg, seed=0).eval()
    frames = _clip(frames=10)
    kv = FrameCausalScorer(model, cache="kv", photometric="off")  # the frames as frame_to_input makes them
    x = torch.from_numpy(np.stack([frame_to_input(f, 32, "resize") for f in frames], axis=1))[None]
    with torch.no_grad():
        full, _ = model.predict(model.encode_frames(x), 30.0)
    for f, frame in enumerate(frames):
        kv.push(frame)
        torch.testing.assert_close(kv.next[0], full[0, f], atol=2e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="residual predictor"):
        cfg.replace(kind="window", encoder={"tubelet_size": 1})


def test_fit_trains_a_frame_causal_model_and_window_only_commands_say_so(world_model, tmp_path):
    from edge_jepa.data.synthetic import render_long_video, write_mp4

    model = str(tmp_path / "w")
    world_model.save(model)
    runner = CliRunner()
    info = runner.invoke(app, ["info", model])
    assert info.exit_code == 0 and "per stream update" in info.output and "frame-causal" in info.output
    for args, message in ((["distill", "--teacher", model, "--student", "vit_nano", "--out", str(tmp_path / "d"),
                            "--steps", "1"], "distillation pairs models of one kind"),):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output, res.output
    res = runner.invoke(app, ["bench", model, "--formats", "eager", "--runs", "1"])  # timed by its stream update
    assert res.exit_code == 0 and "frame-causal stream step" in " ".join(res.output.split()), res.output
    video = write_mp4(render_long_video(3, 7.0, WorldConfig(size=64, fps=30.0)).frames, tmp_path / "scene.mp4", 30.0)
    res = runner.invoke(app, ["fit", "--source", str(video), "--out", str(tmp_path / "fit"), "--model", model,
                              "--steps", "2", "--batch-size", "2", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert isinstance(edge_jepa.load(tmp_path / "fit"), FrameCausalJEPA)
    assert "held-out check: the last 1.4 s" in " ".join(res.output.split())  # 20% of 7 s, scored by the world model
    fit = json.loads((tmp_path / "fit" / "card.json").read_text())["fit"]
    assert fit["before"]["windows"] == fit["after"]["windows"] == 42 - (WORLD_TINY.clip.frames - 1)
    assert fit["before"]["prediction_loss"] != fit["after"]["prediction_loss"]

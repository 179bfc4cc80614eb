"""Device kits (export/android, export/ios, export/jetson): the real tools (adb + executor_runner on a phone,
trtexec on a Jetson,
CoreML on macOS) cannot run on this Linux CI machine, so their parsers are checked on output in each tool's
format (taken from the tools' sources: ExecuTorch examples/portable/executor_runner, TensorRT
samples/common/sampleReporting.cpp) and the scripts on the exact commands their --dry-run prints. The paths
that do run here (ONNX Runtime on CPU, the ExecuTorch Python runtime = `edge-jepa bench`) run for real."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_jepa.bench.device import (
    ToolOutputError,
    parse_executor_runner,
    parse_max_rss_mb,
    parse_trtexec_summary,
    parse_trtexec_times,
    row_from_parts,
)
from edge_jepa.bench.schema import load_rows

ROOT = Path(__file__).resolve().parents[1]
KITS = {"android_executorch.py": "android", "macos_coreml.py": "ios", "jetson_tensorrt.py": "jetson"}


def _path(name: str) -> Path:
    """A device script in its deployment kit (export/<device>/)."""
    return ROOT / "export" / KITS[name] / name


EXECUTOR_RUNNER_LOG = """\
I 00:00:00.000581 executorch:executor_runner.cpp:181] Model file model.pte is loaded.
I 00:00:00.000604 executorch:executor_runner.cpp:190] Using method encode_window
I 00:00:00.013113 executorch:executor_runner.cpp:301] Model loaded in 12.412000 ms.
I 00:00:00.017420 executorch:executor_runner.cpp:412] Iteration 1 of 3: 4.250000 ms
I 00:00:00.021453 executorch:executor_runner.cpp:412] Iteration 2 of 3: 4.000000 ms
I 00:00:00.025511 executorch:executor_runner.cpp:412] Iteration 3 of 3: 4.100000 ms
I 00:00:00.025530 executorch:executor_runner.cpp:420] Model executed successfully 3 time(s) in 12.350000 ms.
I 00:00:00.025541 executorch:executor_runner.cpp:429] 1 outputs:
"""
OLD_RUNNER_LOG = "I 00:00:00.02 executorch:executor_runner.cpp:250] Model executed successfully 4 time(s) in 10.0 ms."

TRTEXEC_TIMES = json.dumps([
    {"startEnqMs": 0.1, "endEnqMs": 0.2, "startH2dMs": 0.2, "endH2dMs": 0.3, "startComputeMs": 0.3,
     "endComputeMs": 1.3, "startD2hMs": 1.3, "endD2hMs": 1.4, "h2dMs": 0.1, "computeMs": 1.0, "d2hMs": 0.1,
     "latencyMs": 1.2},
    {"startEnqMs": 1.5, "endEnqMs": 1.6, "startH2dMs": 1.6, "endH2dMs": 1.7, "startComputeMs": 1.7,
     "endComputeMs": 3.0, "startD2hMs": 3.0, "endD2hMs": 3.1, "h2dMs": 0.1, "computeMs": 1.3, "d2hMs": 0.1,
     "latencyMs": 1.5},
])
TRTEXEC_STDOUT = """\
[11/25/2025-10:00:00] [I] === Performance summary ===
[11/25/2025-10:00:00] [I] Throughput: 812.5 qps
[11/25/2025-10:00:00] [I] Latency: min = 1.1 ms, max = 2.5 ms, mean = 1.3 ms, median = 1.25 ms, \
percentile(50%) = 1.25 ms, percentile(90%) = 1.6 ms, percentile(99%) = 2.2 ms
[11/25/2025-10:00:00] [I] Enqueue Time: min = 0.1 ms, max = 0.3 ms, mean = 0.12 ms, median = 0.11 ms
[11/25/2025-10:00:00] [I] GPU Compute Time: min = 0.9 ms, max = 2.1 ms, mean = 1.05 ms, median = 1.0 ms, \
percentile(90%) = 1.3 ms
"""
TIME_V = "\tCommand being timed: \"trtexec --onnx=x.onnx\"\n\tMaximum resident set size (kbytes): 524288\n"


def test_executor_runner_output_is_parsed():
    times = parse_executor_runner([EXECUTOR_RUNNER_LOG, EXECUTOR_RUNNER_LOG])
    assert times.per_iteration and times.samples_ms == (4.25, 4.0, 4.1, 4.25, 4.0, 4.1)
    old = parse_executor_runner([OLD_RUNNER_LOG, OLD_RUNNER_LOG.replace("10.0 ms", "12.0 ms")])
    assert not old.per_iteration and old.samples_ms == (2.5, 3.0)  # mean of each launch
    with pytest.raises(ToolOutputError, match="neither 'Iteration i of n"):
        parse_executor_runner("E executor_runner.cpp:100] Loading of method encode_window failed")


def test_trtexec_and_time_output_are_parsed():
    assert parse_trtexec_times(TRTEXEC_TIMES) == (1.2, 1.5)
    summary = parse_trtexec_summary(TRTEXEC_STDOUT)
    assert summary["Latency"] == {"min": 1.1, "max": 2.5, "mean": 1.3, "median": 1.25, "p50": 1.25, "p90": 1.6,
                                  "p99": 2.2}
    assert summary["GPU Compute Time"]["p90"] == 1.3
    assert parse_max_rss_mb(TIME_V) == 512.0 and parse_max_rss_mb("no report") is None
    with pytest.raises(ToolOutputError, match="latencyMs"):
        parse_trtexec_times(json.dumps([{"computeMs": 1.0}]))
    with pytest.raises(ToolOutputError, match="no 'Latency: min"):
        parse_trtexec_summary("[I] Building engine ... failed")


def test_rows_from_device_parts_add_up_the_step():
    row = row_from_parts({"encode_context": [1.0, 2.0], "encode_window": [2.0, 3.0], "predict": [0.5, 0.5, 9.0]},
                         format="tensorrt", precision="fp16", model="vit_pico", frames=8, size=64)
    assert row.parts["step"]["runs"] == 2 and row.p50_ms == pytest.approx((3.5 + 5.5) / 2)
    assert row.parts["predict"]["runs"] == 3 and row.fps == pytest.approx(1e3 / row.p50_ms)
    with pytest.raises(ValueError, match="missing encode_window"):
        from edge_jepa.bench.device import step_samples

        step_samples({"encode_context": [1.0], "predict": [1.0]})


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(_path(name)), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def _main(name: str):
    """A device script's main(), loaded from its file (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), _path(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def pte_manifest(tmp_path_factory):
    """A bundle directory as the scripts read it (manifest only: dry runs never open the artifacts)."""
    root = tmp_path_factory.mktemp("pte")
    methods = {m: {"file": "model.pte", "entry": m} for m in ("encode_context", "encode_window", "predict")}
    (root / "manifest.json").write_text(json.dumps({"format": "executorch", "precision": "int8", "methods": methods,
                                                    "clip": {"frames": 8, "size": 64}, "model": {"name": "x"}}))
    return root


def test_android_dry_run_prints_the_adb_commands(pte_manifest, tmp_path, capsys):
    main = _main("android_executorch.py")
    assert main([str(pte_manifest), "--runner", "out/executor_runner", "--serial", "R5X", "--threads", "2",
                 "--num-executions", "10", "--launches", "1", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    d = "/data/local/tmp/edge-jepa"
    assert lines[:4] == [f"adb -s R5X shell mkdir -p {d}", f"adb -s R5X push {pte_manifest}/model.pte {d}/model.pte",
                         f"adb -s R5X push out/executor_runner {d}/executor_runner",
                         f"adb -s R5X shell chmod 755 {d}/executor_runner"]
    run = (f"adb -s R5X shell 'cd {d} && ./executor_runner --model_path=model.pte --method_name=encode_window "
           "--num_executions=10 --cpu_threads=2'")
    assert lines.count(run) == 2 and len(lines) == 4 + 3 * 2  # a warm-up launch + 1 counted, per method
    onnx = tmp_path / "onnx"
    onnx.mkdir()
    (onnx / "manifest.json").write_text(json.dumps({"format": "onnx"}))
    with pytest.raises(SystemExit, match="this script runs executorch bundles"):
        main([str(onnx), "--runner", "r", "--dry-run"])


def test_jetson_dry_runs_print_the_trtexec_commands_and_providers(tmp_path, capsys):
    main = _main("jetson_tensorrt.py")
    bundle = tmp_path / "onnx"
    bundle.mkdir()
    methods = {m: {"file": f"{m}.onnx", "entry": ""} for m in ("encode_context", "encode_window", "predict")}
    (bundle / "manifest.json").write_text(json.dumps({"format": "onnx", "precision": "fp32", "methods": methods,
                                                      "clip": {"frames": 8, "size": 64}, "model": {"name": "x"}}))
    work = tmp_path / "w"
    assert main(["trtexec", str(bundle), "--precision", "int8", "--iterations", "50", "--time", "/usr/bin/time",
                 "--work-dir", str(work), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[1] == (f"/usr/bin/time -v trtexec --onnx={bundle}/encode_window.onnx "
                        f"--saveEngine={work}/encode_window-int8.plan --int8 --fp16 --warmUp=500 --iterations=50 "
                        f"--duration=0 --percentile=50,90,99 --exportTimes={work}/encode_window-int8.times.json")
    assert main(["ort", str(bundle), "--precision", "fp16", "--work-dir", str(work), "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    trt, cuda, cpu = plan["providers"]
    assert trt[0] == "TensorrtExecutionProvider" and trt[1]["trt_fp16_enable"] and not trt[1]["trt_int8_enable"]
    assert (cuda, cpu) == ("CUDAExecutionProvider", "CPUExecutionProvider")
    (bundle / "manifest.json").write_text(json.dumps({"format": "onnx", "precision": "int8"}))
    with pytest.raises(SystemExit, match="TensorRT wants the fp32 onnx bundle"):
        main(["trtexec", str(bundle), "--dry-run"])


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the refusal on platforms without CoreML")
def test_macos_script_refuses_clearly_off_macos(tmp_path):
    res = _script("macos_coreml.py", str(tmp_path))
    assert res.returncode == 2 and "CoreML prediction runs only on macOS" in res.stderr


@pytest.mark.slow
def test_jetson_ort_path_runs_here_on_the_cpu_provider(tiny_model_dir, tmp_path):
    from edge_jepa.export import export_bundle

    bundle = export_bundle(str(tiny_model_dir), "onnx", "fp32", out=tmp_path / "onnx", verify_clips=1)
    main = _main("jetson_tensorrt.py")
    assert main(["ort", str(bundle), "--providers", "cpu", "--iterations", "3", "--warmup", "1",
                 "--json", str(tmp_path / "ort.json")]) == 0
    row, = load_rows(tmp_path / "ort.json")
    assert row.status == "ok" and row.format == "onnx" and row.p50_ms > 0 and row.cosine > 0.999
    assert row.tool == "onnxruntime (CPUExecutionProvider)" and row.peak_rss_mb > 0
    with pytest.raises(SystemExit, match="lacks TensorrtExecutionProvider"):
        main(["ort", str(bundle), "--providers", "tensorrt,cpu"])

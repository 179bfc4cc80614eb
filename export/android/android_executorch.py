"""Android / Linux-ARM over adb: time the bundle's .pte with ExecuTorch's own `executor_runner`.

    python export/android/android_executorch.py BUNDLE --runner path/to/executor_runner --json phone.json
    python export/android/android_executorch.py BUNDLE --runner executor_runner --dry-run   # print adb commands

BUNDLE is an `edge-jepa export --format executorch` directory. The runner is an executor_runner built for the
device with the XNNPACK backend linked in (ExecuTorch's Android/ARM build; e.g. the `executor_runner` target
with EXECUTORCH_BUILD_XNNPACK=ON for arm64-v8a). The script pushes the .pte and the runner to --device-dir,
runs each method (`--method_name`) `--launches` times with `--num_executions` timed executions per launch
(the first launch is a warm-up and not counted), pulls nothing back, and parses the runner's log into one
row of the bench schema (format executorch, tool executor_runner): per-method p50/p90/p99 and the step as the
sum of the three methods' runs. executor_runner feeds all-ones inputs: latency, not fidelity, is measured
(the bundle's manifest carries the fidelity measured at export). Peak RSS is not measured on the device.

On a Jetson or a Raspberry Pi with Python, use ExecuTorch's Python runtime instead (same .pte):
    edge-jepa bench BUNDLE --formats executorch --threads 4 --json device.json
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edge_jepa.bench.device import (  # noqa: E402
    BUNDLE_METHODS,
    bundle_manifest,
    emit,
    parse_executor_runner,
    row_from_parts,
)


def adb(serial: str | None, *args: str) -> list[str]:
    return ["adb", *(["-s", serial] if serial else []), *args]


def plan(bundle: Path, manifest: dict, args: argparse.Namespace) -> tuple[list[list[str]], dict[str, list[list[str]]]]:
    """(setup commands, method -> its run commands): exactly what the script executes."""
    files = {spec["file"] for spec in manifest["methods"].values()}
    if len(files) != 1:
        raise SystemExit(f"{bundle}: expected one .pte for all methods, found {sorted(files)}")
    pte = files.pop()
    d = args.device_dir.rstrip("/")
    setup = [
        adb(args.serial, "shell", "mkdir", "-p", d),
        adb(args.serial, "push", str(bundle / pte), f"{d}/{pte}"),
        adb(args.serial, "push", str(args.runner), f"{d}/executor_runner"),
        adb(args.serial, "shell", "chmod", "755", f"{d}/executor_runner"),
    ]
    runs = {}
    for method in BUNDLE_METHODS:
        entry = manifest["methods"][method]["entry"] or method
        command = (f"cd {shlex.quote(d)} && ./executor_runner --model_path={shlex.quote(pte)} "
                   f"--method_name={shlex.quote(entry)} --num_executions={args.num_executions} "
                   f"--cpu_threads={args.threads}")
        runs[method] = [adb(args.serial, "shell", command) for _ in range(args.launches + 1)]  # +1: warm-up launch
    return setup, runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path, help="executorch bundle directory (manifest.json + model.pte)")
    parser.add_argument("--runner", type=Path, required=True, help="executor_runner binary built for the device")
    parser.add_argument("--serial", default=None, help="adb device serial (default: the only device)")
    parser.add_argument("--device-dir", default="/data/local/tmp/edge-jepa")
    parser.add_argument("--threads", type=int, default=4, help="executor_runner --cpu_threads")
    parser.add_argument("--num-executions", type=int, default=20, help="timed executions per launch")
    parser.add_argument("--launches", type=int, default=3, help="counted launches per method (after one warm-up)")
    parser.add_argument("--device-name", default="android (adb)", help="the row's device field")
    parser.add_argument("--json", type=Path, default=None, help="write the row here (bench schema)")
    parser.add_argument("--dry-run", action="store_true", help="print the adb commands, run nothing")
    args = parser.parse_args(argv)

    try:
        manifest = bundle_manifest(args.bundle, ("executorch", "executorch-coreml"),
                                   "this script runs executorch bundles (edge-jepa export SOURCE --format executorch)")
    except ValueError as e:
        raise SystemExit(str(e)) from None
    setup, runs = plan(args.bundle, manifest, args)
    if args.dry_run:
        for command in [*setup, *(c for cs in runs.values() for c in cs)]:
            print(shlex.join(command))
        return 0
    if not args.runner.is_file():
        raise SystemExit(f"{args.runner}: no such executor_runner binary")
    for command in setup:
        subprocess.run(command, check=True, capture_output=True, text=True)
    per_method = {}
    per_iteration = True
    for method, commands in runs.items():
        outputs = []
        for i, command in enumerate(commands):
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            if i:  # the first launch warms caches and frequency governors
                outputs.append(done.stdout + done.stderr)
        times = parse_executor_runner(outputs)
        per_method[method] = times.samples_ms
        per_iteration &= times.per_iteration
    clip, fidelity = manifest["clip"], manifest.get("fidelity", {})
    row = row_from_parts(per_method, format=manifest["format"], precision=manifest["precision"],
                         model=manifest["model"]["name"], source=str(args.bundle), frames=clip["frames"],
                         size=clip["size"], threads=args.threads, runs=args.launches * args.num_executions,
                         warmup=args.num_executions, size_mb=manifest.get("total_bytes", 0) / 1e6 or None,
                         tool="executor_runner (adb)", device=args.device_name,
                         notes=("" if per_iteration else "runner printed means only: one sample per launch; ")
                         + "all-ones inputs; step = sum of the methods' runs")
    if fidelity.get("verified"):
        row.cosine = min(fidelity[m]["cosine"] for m in BUNDLE_METHODS)
        row.cosine_from = "manifest (each graph vs fp32 eager at export)"
    emit([row], args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""CoreML exports of a frame-causal model's stream step: export time and bundle size per format and precision.

    python benchmarks/coreml_stream_export.py --model world --json benchmarks/results/coreml_stream_export.json

Exports the stream step (edge_jepa.export.stream_step) of MODEL to every CoreML row of the format table that has a
stream exporter (`coreml` fp32/fp16/int8/int4, `executorch-coreml` fp32/fp16) in this one process, one after the
other (the toolkits are imported once before the first timing), and reports the wall time of `export_bundle` and
the bundle's size. Off macOS the bundles are converted and spec-checked but not run (prediction needs macOS), so
the script also reports an eager estimate of what the weights' rounding costs: the stream-step graph with its
weights rounded as the export rounds them (fp16; int8 per output channel, symmetric, on every Linear/Conv and
constant table over 2048 elements, as coremltools.optimize's linear_quantize_weights) against fp32, over real
streams longer than the window (the worst step's mean token cosine). It does not measure CoreML's own numerics.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROWS = (("coreml", "fp32"), ("coreml", "fp16"), ("coreml", "int8"), ("coreml", "int4"),
        ("executorch-coreml", "fp32"), ("executorch-coreml", "fp16"))
THRESHOLD = 2048  # coremltools.optimize compresses constants above this many elements


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="world", help="a frame-causal model (anything edge_jepa.load takes)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    import coremltools  # noqa: F401 - imported before the first timing, like every later export
    import executorch.exir  # noqa: F401

    import edge_jepa
    from edge_jepa.export import export_bundle

    model = edge_jepa.load(args.model)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, precision in ROWS:
            start = time.perf_counter()
            path = export_bundle(model, fmt, precision, out=Path(tmp) / f"{fmt}-{precision}")
            seconds = time.perf_counter() - start
            manifest = json.loads((path / "manifest.json").read_text())
            rows.append({"format": fmt, "precision": precision, "export_s": round(seconds, 2),
                         "bytes": manifest["total_bytes"], "verified": manifest["fidelity"]["verified"],
                         "reason": manifest["fidelity"].get("reason", "")})
            print(f"{fmt:18s} {precision:5s} export {seconds:6.1f} s  {manifest['total_bytes'] / 1e6:6.2f} MB",
                  flush=True)
    estimate = rounding_estimate(model)
    for name, value in estimate.items():
        print(f"eager estimate, {name}: tokens {value['tokens']:.6f}, predicted {value['predicted']:.6f}")
    result = {"model": args.model, "params": model.num_params(), "torch_threads": 1, "rows": rows,
              "eager_rounding_estimate": estimate}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _int8(t: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 per output channel (axis 0), as linear_quantize_weights(mode="linear_symmetric")."""
    scale = t.abs().amax(dim=tuple(range(1, t.dim())), keepdim=True) / 127
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.where(scale > 0, torch.round(t / safe).clamp(-127, 127) * scale, t)


def rounding_estimate(model: Any) -> dict[str, dict[str, float]]:
    """Worst-step mean token cosine vs fp32 of the stream-step graph with fp16 (weights and compute) or int8
    weights, over the export's verification streams."""
    from edge_jepa.export.stream_bundle import verification_frames
    from edge_jepa.export.stream_step import stream_step_graph
    from edge_jepa.quantize import token_cosine

    ref = stream_step_graph(model, None, "fused")
    int8 = copy.deepcopy(ref)
    with torch.no_grad():
        for tensor in [*int8.parameters(), *int8.buffers()]:  # weights and constant tables (RoPE) alike
            if tensor.dim() >= 2 and tensor.numel() > THRESHOLD:
                tensor.copy_(_int8(tensor))
    variants = {"fp16 weights and compute (torch CPU half)": (copy.deepcopy(ref).half(), torch.float16),
                "int8 weights, fp32 compute": (int8, torch.float32)}
    out = {}
    streams = verification_frames(model, model.config.clip.fps, 2)
    for name, (graph, dtype) in variants.items():
        worst = {"tokens": 1.0, "predicted": 1.0}
        with torch.no_grad():
            for stream in streams:
                a = list(ref.example_inputs())
                b = [t.to(dtype) for t in a]
                for frame in stream:
                    x = torch.from_numpy(frame)[None, :, None]
                    ya, yb = ref(x, *a[1:]), graph(x.to(dtype), *b[1:])
                    worst["tokens"] = min(worst["tokens"], token_cosine(yb[0].float(), ya[0])[0])
                    worst["predicted"] = min(worst["predicted"], token_cosine(yb[1].float(), ya[1])[0])
                    a, b = [x, *ya[3:]], [x.to(dtype), *yb[3:]]
        out[name] = worst
    return out


if __name__ == "__main__":
    raise SystemExit(main())

"""Targets checked against measured rows: each verdict carries the measured figures and by how much it is met
or missed (never a bare yes/no)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from edge_jepa.bench.schema import BenchRow


@dataclass
class Verdict:
    target: str
    met: bool | None  # None: not measurable from these rows
    value: float | None
    threshold: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        mark = {True: "**met**", False: "**missed**", None: "not measured"}[self.met]
        return f"- {self.target}: {mark}. {self.detail}"


def find(rows: Sequence[BenchRow], **fields: Any) -> BenchRow | None:
    """The first measured ("ok") row whose fields (model, source, format, precision, frames, size, ...) all equal
    the given values."""
    for r in rows:
        if r.status == "ok" and all(getattr(r, name) == want for name, want in fields.items()):
            return r
    return None


def _label(r: BenchRow) -> str:
    return f"{r.model} {r.format}/{r.precision} at {r.frames}x{r.size}"


def speedup(name: str, fast: BenchRow | None, slow: BenchRow | None, at_least: float) -> Verdict:
    """slow p50 / fast p50 >= at_least."""
    if fast is None or slow is None or fast.p50_ms is None or slow.p50_ms is None:
        return Verdict(name, None, None, at_least, "one of the two rows was not measured")
    ratio = slow.p50_ms / fast.p50_ms
    gap = "" if ratio >= at_least else f" ({at_least / ratio:.2f}x short)"
    return Verdict(name, ratio >= at_least, ratio, at_least,
                   f"{_label(slow)} {slow.p50_ms:.2f} ms / {_label(fast)} {fast.p50_ms:.3f} ms = {ratio:.0f}x "
                   f"(target >= {at_least:g}x){gap}")


def no_slower(name: str, a: BenchRow | None, b: BenchRow | None) -> Verdict:
    """a p50 <= b p50."""
    if a is None or b is None or a.p50_ms is None or b.p50_ms is None:
        return Verdict(name, None, None, 1.0, "one of the two rows was not measured")
    ratio = a.p50_ms / b.p50_ms
    how = f"{(1 - ratio) * 100:.0f}% faster" if ratio <= 1 else f"{(ratio - 1) * 100:.0f}% slower"
    detail = f"{_label(a)} {a.p50_ms:.2f} ms vs {_label(b)} {b.p50_ms:.2f} ms: {how}"
    return Verdict(name, ratio <= 1, ratio, 1.0, detail)


def matmul_fraction(name: str, rows: Sequence[BenchRow], at_least: float, part: str = "encode_window") -> Verdict:
    """The best fp32 `part` among the rows reaches `at_least` of the measured fp32 matmul throughput."""
    best: tuple[float, BenchRow] | None = None
    for r in rows:
        frac = r.parts.get(part, {}).get("matmul_fraction") if r.status == "ok" and r.precision == "fp32" else None
        if frac is not None and (best is None or frac > best[0]):
            best = (frac, r)
    if best is None:
        return Verdict(name, None, None, at_least, f"no fp32 {part} was timed")
    frac, r = best
    t = r.parts[part]
    gap = "" if frac >= at_least else f" ({(at_least - frac) * 100:.0f} points short)"
    return Verdict(name, frac >= at_least, frac, at_least,
                   f"best: {_label(r)} {part} {t['gflops']:.1f} GFLOP in {t['p50_ms']:.1f} ms = "
                   f"{t['gflops_per_s']:.1f} GFLOP/s = {frac * 100:.0f}% of the {r.matmul_gflops_per_s:.0f} GFLOP/s "
                   f"fp32 matmul measured in the same run (target >= {at_least * 100:.0f}%){gap}")


def verdicts_markdown(verdicts: Sequence[Verdict]) -> str:
    return "\n".join(v.markdown() for v in verdicts) + "\n"

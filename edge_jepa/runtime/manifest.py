"""Read, verify and open an export bundle (a directory with manifest.json, written by `edge-jepa export`).

`open_bundle(path)` reads the manifest, checks the files against their sha256, looks the format up in the
format table (edge_jepa.formats) and returns that format's runner (a `BundleRunner`, edge_jepa.runtime.bundle).
Nothing here imports torch, a runner or an exporter: the runner class is resolved from the table's row.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from edge_jepa.formats import KINDS, MANIFEST, SUPPORTED_BUNDLE_VERSIONS, bundle_methods, get_format


class BundleError(ValueError):
    """A bundle directory that cannot be opened (missing/corrupt files, unknown format or version)."""


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed manifest.json of a bundle directory, with its required fields checked."""
    path = Path(path)
    file = path / MANIFEST
    if not file.is_file():
        raise BundleError(f"{path}: not an export bundle (no {MANIFEST}); create one with `edge-jepa export`")
    try:
        manifest = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{file}: invalid JSON ({e})") from None
    missing = [k for k in ("bundle_format_version", "format", "precision", "model", "methods", "files")
               if k not in manifest]
    if missing:
        raise BundleError(f"{file}: missing fields {missing}")
    if manifest["bundle_format_version"] not in SUPPORTED_BUNDLE_VERSIONS:
        raise BundleError(f"{file}: bundle format version {manifest['bundle_format_version']} is not supported by "
                          f"this edge-jepa (supports {SUPPORTED_BUNDLE_VERSIONS}); upgrade edge-jepa")
    kind = manifest.setdefault("kind", "window")
    if kind not in KINDS:
        raise BundleError(f"{file}: unknown model kind {kind!r} (this edge-jepa reads {', '.join(KINDS)}); "
                          "upgrade edge-jepa")
    absent = [m for m in bundle_methods(kind) if m not in manifest["methods"]]
    if absent:
        raise BundleError(f"{file}: methods {absent} missing")
    return manifest


def verify_files(path: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Raise BundleError if any file listed in the manifest is missing or differs from its sha256."""
    path = Path(path)
    for name, entry in manifest["files"].items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: {name} is missing (listed in {MANIFEST})")
        h = hashlib.sha256()
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != entry["sha256"]:
            raise BundleError(f"{path}: {name} does not match its sha256 in {MANIFEST} (corrupt or modified); "
                              "re-export the bundle")


def is_bundle(path: str | os.PathLike) -> bool:
    """Whether `path` is a bundle directory (has a manifest)."""
    path = Path(path)
    return path.is_dir() and (path / MANIFEST).is_file()


def open_bundle(path: str | os.PathLike, *, check_hashes: bool = True, **kwargs: Any) -> Any:
    """The Runner for a bundle directory (backend chosen by the manifest's format); kwargs go to the runner."""
    path = Path(path)
    manifest = read_manifest(path)
    if check_hashes:
        verify_files(path, manifest)
    try:
        fmt = get_format(manifest["format"])
    except ValueError as e:
        raise BundleError(f"{path}: {e}") from None
    reason = fmt.run_unavailable()
    if reason:
        raise RuntimeError(f"cannot run {path} here: {reason}")
    return fmt.resolve("runner")(path, manifest, **kwargs)

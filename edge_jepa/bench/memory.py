"""Resident memory of this process: now, and its peak.

The peak only grows over a process's life, so a benchmark that wants the peak of one (format, precision)
cell runs that cell in a process of its own (see edge_jepa.bench.cell). On Linux the peak is VmHWM of
/proc/self/status, the high-water mark of this process's own address space: getrusage's ru_maxrss is not
usable there, because Linux carries the parent's high-water mark over fork and exec into a child's
ru_maxrss (a cell spawned by a 1.4 GB parent would report >= 1.4 GB).
"""

from __future__ import annotations

import os
import resource
import sys

MB = 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (Linux VmHWM; elsewhere ru_maxrss)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / MB  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak * 1024 / MB  # bytes on macOS, KiB elsewhere


def current_rss_mb() -> float:
    """Current resident set size, MiB (Linux /proc; elsewhere the peak, the best getrusage offers)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB
    except OSError:
        return peak_rss_mb()

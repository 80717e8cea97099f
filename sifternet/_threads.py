"""The one ``num_threads`` convention of sifternet (docs/api.md, Threads and the GIL)."""

from __future__ import annotations

import operator
import os

#: The most threads a call may ask for (the kernel refuses more, too).
MAX_THREADS = 1024


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_num_threads(num_threads: int | None) -> int:
    """Thread count for a kernel call.

    ``None`` follows ``OMP_NUM_THREADS`` (its first entry) capped at the usable cores, or
    all usable cores when it is unset; ``-1`` means all usable cores; a positive count up to
    :data:`MAX_THREADS` is taken as given; anything else is a ``ValueError``.
    """
    cores = min(usable_cores(), MAX_THREADS)
    if num_threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
        wanted = int(env) if env.isdigit() and len(env) < 10 else 0
        return min(wanted, cores) if wanted > 0 else cores
    if isinstance(num_threads, bool):
        raise TypeError("num_threads: expected an int or None, got bool")
    try:
        num_threads = operator.index(num_threads)
    except TypeError:
        raise TypeError(f"num_threads: expected an int or None, got {type(num_threads).__name__}") from None
    if num_threads == -1:
        return cores
    if num_threads < 1:
        raise ValueError(f"num_threads: expected a positive count, -1 or None, got {num_threads}")
    if num_threads > MAX_THREADS:
        raise ValueError(
            f"num_threads: expected a positive count up to {MAX_THREADS}, -1 or None, got {num_threads}"
        )
    return num_threads

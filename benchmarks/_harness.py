"""Shared timing helpers for the benchmark scripts (not part of the library).

Every benchmark compares against a baseline measured in the same process and
run, interleaving the candidates so that machine noise hits them alike.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

import numpy as np


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    pools = [
        f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads, "
        f"{p.get('architecture')})"
        for p in threadpool_info()
        if p.get("user_api") == "blas"
    ]
    return "; ".join(pools) or "no BLAS pool found"


def header(title: str) -> None:
    print(f"# {title}")
    print(f"# python {platform.python_version()}, numpy {np.__version__}, BLAS: {blas_info()}")


def time_per_call(fun: Callable[[], object], min_time: float = 0.05) -> float:
    """Seconds per call of ``fun``, from a loop long enough to reach ``min_time``."""
    fun()
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fun()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / number
        number *= 2 if elapsed < min_time / 4 else 1 + int(min_time / max(elapsed, 1e-9))


def compare(
    candidates: dict[str, Callable[[], object]], repeats: int = 7, min_time: float = 0.05
) -> dict[str, float]:
    """Median seconds per call of each candidate, measured in interleaved rounds. The
    order rotates from round to round, so that no candidate always runs right after
    the same other one (whose threads or caches may still be busy)."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for r in range(repeats):
        start = r % len(names)
        for name in names[start:] + names[:start]:
            samples[name].append(time_per_call(candidates[name], min_time))
    return {name: float(np.median(s)) for name, s in samples.items()}


def print_table(
    title: str, times: dict[str, float], baseline: str, unit: float = 1e-6, unit_name: str = "us"
) -> None:
    base = times[baseline]
    print(f"\n## {title}")
    print(f"| candidate | time ({unit_name}) | ratio to {baseline} |")
    print("| --- | ---: | ---: |")
    for name, t in times.items():
        print(f"| {name} | {t / unit:.2f} | {t / base:.2f} |")

"""What the operator-file references share: their arguments (`FILE [RUNS] [--memory]`) and
their timing: the work once (its result kept to print), then RUNS more times in this warm
process (the interpreter's start and the imports are not counted), the result and the
median, quickest and slowest runs printed."""

import statistics
import sys
import time


def arguments():
    """FILE, RUNS (7 when not given), whether `--memory` was given, and with it the
    file's bytes (read before any timing)."""
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    memory = "--memory" in sys.argv[1:]
    path = args[0]
    runs = int(args[1]) if len(args) > 1 else 7
    data = open(path, "rb").read() if memory else None
    return path, runs, memory, data


def time_warm(work, runs, label):
    """Runs `work` once, then `runs` times timed; prints its result and the times."""
    result = work()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        work()
        times.append(time.perf_counter() - t)
    print(result)
    print(
        f"{label}: median {statistics.median(times) * 1000:.1f} ms, "
        f"min {min(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms ({runs} runs)"
    )

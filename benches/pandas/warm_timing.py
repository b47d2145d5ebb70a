"""The timing the operator-file references share: the work once (its result kept to print),
then RUNS more times in this warm process (the interpreter's start and the imports are not
counted), the result and the median, quickest and slowest runs printed."""

import statistics
import time


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

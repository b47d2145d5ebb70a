"""What `signals parse --summary FILE` does to a PJM Data Miner JSON response, in pandas the
way Data Miner clients read it (`json.load`, then a DataFrame of `items`; the quicker of the
two ways measured in issue 24, `read_json` being slower): the start times parsed, each
interval's end (five minutes on), the points sorted by start and node, then the summary the
example prints (count, nodes, first start, last end, min/mean/max LMP).

Reads what `GRIDFLEX_BENCH_DUMP=DIR cargo bench --bench signals_parse -- 'data miner'` writes
(`DIR/dataminer.json`), or any `rt_fivemin_hrl_lmps` response. Times the work in this warm
process (the interpreter's start and the imports are not counted): one warm-up run, then the
median of RUNS. `--memory` parses the file's bytes already read (`json.loads`) instead.
Prints the summary so it can be compared with the example's.

usage: python benches/pandas/dataminer_json.py FILE [RUNS] [--memory]
       (pandas installed; pin it like the example: taskset -c 0 ...)
"""

import json
import pandas as pd
from warm_timing import arguments, time_warm

PATH, RUNS, MEMORY, BYTES = arguments()


def summarise():
    if MEMORY:
        doc = json.loads(BYTES)
    else:
        with open(PATH, "rb") as f:
            doc = json.load(f)
    df = pd.DataFrame(doc["items"])
    df["start"] = pd.to_datetime(df["datetime_beginning_utc"], utc=True)
    df["end"] = df["start"] + pd.Timedelta(minutes=5)
    df = df.sort_values(["start", "pnode_id"], kind="stable")
    lmp = df["total_lmp_rt"]
    return {
        "count": len(df),
        "nodes": df["pnode_id"].nunique(),
        "first_start": df["start"].min().isoformat(),
        "last_end": df["end"].max().isoformat(),
        "min_lmp": float(lmp.min()),
        "mean_lmp": float(lmp.mean()),
        "max_lmp": float(lmp.max()),
    }


time_warm(summarise, RUNS, "memory" if MEMORY else "file")

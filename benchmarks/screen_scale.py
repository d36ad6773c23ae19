"""Benchmark: screening a generated space at scale (issue 11, section 4).

Measures, with one model (the default architecture; ``--steps`` of training
only, since the throughput does not depend on how long the model trained):

1. candidates per second of the serial screen (``Designer.screen``, the whole
   space at once), the chunked screen in this process (1 worker) and on a
   LocalCluster of 2 single-threaded worker processes: medians over
   ``--repeats`` on the first ``--rate-alloys`` alloys of the 5-element 5 at.%
   grid of the default palette, all in the same run (the serial baseline
   scores every row at once and sorts them, as ``Designer.screen`` does);
2. peak memory while streaming ``--stream`` candidates (the 5-element 5 at.%
   grid, first rows) through the chunked screen: tracemalloc's peak of
   Python and NumPy allocations (torch's buffers are not traced; the peak
   RSS of the whole run is printed at the end); a stream 4 times shorter beside it shows whether memory grows with the
   stream; the serial screen's bytes per row show what building it all
   would need;
3. the time to screen every equimolar 4-, 5- and 6-element alloy of the
   default palette (chunked, 1 worker), and the 5 at.% grid of the
   5-element ones projected from the measured rate.

Prints a table and writes it to docs/results/screen_scale.txt.

Usage::

    python benchmarks/screen_scale.py [RUN_DIR] [--repeats 3] [--stream 200000] [--steps 20]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from pyro_hea.design.designer import Designer
from pyro_hea.design.distributed import SpaceSpec, local_cluster, screen_space
from pyro_hea.design.space import DEFAULT_PALETTE
from pyro_hea.io import write_text

OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "screen_scale.txt"


def build_designer(run_dir, steps: int) -> tuple[Designer, str]:
    from pyro_hea.cli import main as cli

    if run_dir:
        return Designer.from_run(run_dir), f"loaded from {run_dir}"
    out = Path(tempfile.mkdtemp(prefix="pyro-hea-screen-bench-")) / "run"
    command = ["train", "--dataset", "pei2020", "--seed", "0", "--epochs", str(steps), "--out", str(out), "--quiet"]
    if cli(command) != 0:
        raise SystemExit("training failed")
    return Designer.from_run(out), f"pyro-hea train --dataset pei2020 --seed 0 --epochs {steps} (default architecture)"


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stream", type=int, default=200_000, help="candidates of the memory stream")
    parser.add_argument("--steps", type=int, default=20, help="training steps when no RUN_DIR is given")
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--rate-alloys", type=int, default=60_000, help="alloys of each throughput run")
    parser.add_argument("--rate-chunk", type=int, default=10_000, help="chunk size of the throughput runs")
    args = parser.parse_args()
    import distributed

    designer, model = build_designer(args.run_dir, args.steps)
    lines = [f"model: {model}", f"palette: {len(DEFAULT_PALETTE)} elements ({','.join(DEFAULT_PALETTE)})"]

    # 1. throughput: serial, chunked in-process, LocalCluster(2), same space, same run
    rate_spec = SpaceSpec(DEFAULT_PALETTE, 5, grid_step=5.0, limit=args.rate_alloys)
    n = rate_spec.size
    chunk = args.rate_chunk

    def serial():  # what Designer.screen does with a space: every row at once, then one sort
        space, elements = rate_spec.block(0, n)
        table, x, good, key = designer._score_space(space, elements, 1)
        table.iloc[np.argsort(-key, kind="stable")]

    def one():
        screen_space(designer, rate_spec, top=1000, chunk_size=chunk, progress=False)

    serial(); one()  # warm up
    rates = {"serial (all rows at once)": [n / timed(serial) for _ in range(args.repeats)],
             "chunked, 1 worker (in-process)": [n / timed(one) for _ in range(args.repeats)]}
    started = time.perf_counter()
    cluster = local_cluster(2)  # what --workers 2 starts
    client = distributed.Client(cluster, set_as_default=False)
    startup = time.perf_counter() - started

    def two():
        screen_space(designer, rate_spec, top=1000, chunk_size=chunk, client=client, progress=False)

    two()  # warm up: the workers import torch and receive the designer
    rates["chunked, LocalCluster(2 processes)"] = [n / timed(two) for _ in range(args.repeats)]
    client.close()
    cluster.close()
    lines += ["", f"1. throughput on the first {n:,} alloys of the 5-element 5 at.% grid (chunks of {chunk:,}), "
                  f"median of {args.repeats} (min-max)"]
    for name, values in rates.items():
        lines.append(f"   {name:<38} {statistics.median(values):>9,.0f} alloys/s  "
                     f"({min(values):,.0f}-{max(values):,.0f})")
    lines.append(f"   LocalCluster start-up: {startup:.1f} s (not in the rates)")
    per_worker = statistics.median(rates["chunked, 1 worker (in-process)"])

    # 2. memory: the serial screen's bytes per row, then two streams
    tracemalloc.start()
    m = SpaceSpec(DEFAULT_PALETTE, 4, grid_step=10.0).size
    designer.screen(palette=DEFAULT_PALETTE, k=4, grid_step=10.0)
    serial_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    lines += ["", "2. memory (tracemalloc peak of Python/NumPy allocations; torch's own buffers not traced)",
              f"   serial Designer.screen of the 4-element 10 at.% grid, {m:,} alloys at once: {serial_peak / 2**20:,.1f} MiB "
              f"({serial_peak / m:,.0f} bytes/alloy; 10^7 alloys would need ~{serial_peak / m * 1e7 / 2**30:,.0f} GiB)"]
    for size in (args.stream // 4, args.stream):
        spec = SpaceSpec(DEFAULT_PALETTE, 5, grid_step=5.0, limit=size)
        tracemalloc.start()
        started = time.perf_counter()
        result = screen_space(designer, spec, top=1000, chunk_size=args.chunk_size, progress=False)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        lines.append(f"   chunked stream of {size:>9,} (5-element 5 at.% grid, chunks of {args.chunk_size:,}, top 1000): "
                     f"peak {peak / 2**20:,.1f} MiB, {seconds:,.1f} s "
                     f"under tracemalloc ({result.summary['scored']:,} scored)")

    # 3. the equimolar spaces, and the 5 at.% grid projected
    lines += ["", "3. whole spaces (chunked, 1 worker)"]
    total_n, total_s = 0, 0.0
    for k in (4, 5, 6):
        spec = SpaceSpec(DEFAULT_PALETTE, k)
        seconds = timed(lambda: screen_space(designer, spec, top=1000, chunk_size=args.chunk_size, progress=False))
        total_n, total_s = total_n + spec.size, total_s + seconds
        lines.append(f"   every equimolar {k}-element alloy: {spec.size:>7,} alloys in {seconds:5.2f} s")
    lines.append(f"   every equimolar 4- to 6-element alloy: {total_n:,} alloys in {total_s:.2f} s")
    grid5 = SpaceSpec(DEFAULT_PALETTE, 5, grid_step=5.0).size
    lines.append(f"   5 at.% grid of the 5-element alloys: {grid5:,} alloys, projected "
                 f"{grid5 / per_worker / 60:,.1f} min on 1 worker at {per_worker:,.0f} alloys/s (not run)")
    lines.append(f"   10^10 alloys on 100 such workers: {1e10 / (100 * per_worker) / 3600:,.1f} h (projected)")
    lines.append(f"   peak RSS of this process over the whole benchmark: {rss_mib():,.0f} MiB")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    write_text(OUT, text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

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

With ``--ten-million`` and/or ``--full-grid`` it runs only these long
measurements (about 10 and 5 min each at 17,000 alloys/s) and adds their
lines to docs/results/screen_scale.txt under "4.", keeping the rest:

- ``--ten-million``: the peak memory of this process while streaming 10^7
  candidates (the first 10^7 of the 34,489,455 alloys of the 6-element
  5 at.% grid) through the chunked screen, one worker: the resident set
  size sampled every second (psutil) and the kernel's peak (getrusage),
  against the RSS before the stream;
- ``--full-grid``: the time to screen all 4,357,353 alloys of the 5 at.%
  grid of the 5-element alloys (chunked, one worker), and the 10^10-alloy,
  100-worker projection from that rate.

Usage::

    python benchmarks/screen_scale.py [RUN_DIR] [--repeats 3] [--stream 200000] [--steps 20]
    python benchmarks/screen_scale.py --ten-million --full-grid   # the long runs (about 15 min)
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import threading
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


def rss_now_mib() -> float:
    """Resident set size of this process now (psutil; /proc when psutil is missing)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover
        return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20
    return psutil.Process().memory_info().rss / 2**20


class RssSampler:
    """Samples this process's RSS every ``every`` seconds in a thread: ``(seconds, MiB)`` pairs."""

    def __init__(self, every: float = 1.0):
        self.every, self.samples, self._stop = every, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        started = time.perf_counter()
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - started, rss_now_mib()))
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append((self.samples[-1][0] if self.samples else 0.0, rss_now_mib()))

    def at(self, fraction: float) -> float:
        """The RSS sampled nearest ``fraction`` of the way through."""
        end = self.samples[-1][0]
        return min(self.samples, key=lambda s: abs(s[0] - fraction * end))[1]


def long_runs(designer, model: str, ten_million: bool, full_grid: bool, chunk_size: int) -> list[str]:
    """The measured lines of section 4: the 10^7 stream's memory, the whole 5 at.% grid's time."""
    lines = ["", f"4. measured at scale (chunked, 1 worker in this process, chunks of {chunk_size:,}, top 1000; "
                 f"model: {model})"]
    warm = SpaceSpec(DEFAULT_PALETTE, 6, grid_step=5.0, limit=chunk_size)
    screen_space(designer, warm, top=1000, chunk_size=chunk_size, progress=False)  # warm up: caches, torch
    if ten_million:
        spec = SpaceSpec(DEFAULT_PALETTE, 6, grid_step=5.0, limit=10**7)
        before, peak_before = rss_now_mib(), rss_mib()
        started = time.perf_counter()
        with RssSampler() as rss:
            result = screen_space(designer, spec, top=1000, chunk_size=chunk_size, progress=False)
        seconds = time.perf_counter() - started
        peak = max(m for _, m in rss.samples)
        lines += [
            f"   10^7-candidate stream (the first {spec.size:,} of the "
            f"{SpaceSpec(DEFAULT_PALETTE, 6, grid_step=5.0).size:,} alloys of the 6-element 5 at.% grid): "
            f"{seconds / 60:,.1f} min, {spec.size / seconds:,.0f} alloys/s, {result.summary['scored']:,} scored, "
            f"{result.summary['chunks']:,} chunks",
            f"   peak RSS of the process while streaming: {peak:,.0f} MiB (sampled every 1 s); "
            f"RSS before the stream {before:,.0f} MiB, so the stream added {peak - before:,.0f} MiB",
            f"   RSS at 10% / 50% / 100% of the stream: {rss.at(0.1):,.0f} / {rss.at(0.5):,.0f} / "
            f"{rss.at(1.0):,.0f} MiB; kernel peak (getrusage) {peak_before:,.0f} MiB before, "
            f"{rss_mib():,.0f} MiB after",
        ]
    if full_grid:
        spec = SpaceSpec(DEFAULT_PALETTE, 5, grid_step=5.0)
        started = time.perf_counter()
        result = screen_space(designer, spec, top=1000, chunk_size=chunk_size, progress=False)
        seconds = time.perf_counter() - started
        rate = spec.size / seconds
        lines += [
            f"   5 at.% grid of the 5-element alloys: {spec.size:,} alloys in {seconds / 60:,.1f} min "
            f"({rate:,.0f} alloys/s, {result.summary['scored']:,} scored, {result.summary['chunks']:,} chunks)",
            f"   10^10 alloys on 100 workers at this rate each: {1e10 / (100 * rate) / 3600:,.1f} h (projected)",
        ]
    return lines


SECTION_4 = "4. measured at scale"
STREAM_LINES = ("   10^7-candidate stream", "   peak RSS of the process while streaming", "   RSS at 10%")


def read_results() -> tuple[str, list[str]]:
    """docs/results/screen_scale.txt as sections 1-3 and the lines of section 4 (empty when absent)."""
    old = OUT.read_text() if OUT.is_file() else ""
    kept, _, section = old.partition("\n\n" + SECTION_4)
    return kept.rstrip("\n"), (SECTION_4 + section).rstrip("\n").splitlines() if section else []


def by_measurement(lines: list[str]) -> tuple[list[str], list[str]]:
    """Section 4's measured lines split into the 10^7 stream's and the full grid's."""
    stream = [line for line in lines if line.startswith(STREAM_LINES)]
    return stream, [line for line in lines if not line.startswith(STREAM_LINES)]


def append_section(lines: list[str]) -> str:
    """docs/results/screen_scale.txt up to section 4 (kept), then the new section 4.

    A measurement not run this time keeps its old lines when the old section 4
    was measured with the same model and chunk size (its header is the same).
    """
    kept, old_lines = read_results()
    header, body = lines[1], lines[2:]
    if old_lines and old_lines[0] == header:
        (old_stream, old_grid), (new_stream, new_grid) = by_measurement(old_lines[1:]), by_measurement(body)
        body = (new_stream or old_stream) + (new_grid or old_grid)
    return kept + "\n\n" + "\n".join([header, *body]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stream", type=int, default=200_000, help="candidates of the memory stream")
    parser.add_argument("--steps", type=int, default=20, help="training steps when no RUN_DIR is given")
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--rate-alloys", type=int, default=60_000, help="alloys of each throughput run")
    parser.add_argument("--rate-chunk", type=int, default=10_000, help="chunk size of the throughput runs")
    parser.add_argument("--ten-million", action="store_true",
                        help="only: peak memory while streaming 10^7 candidates (adds to the results file)")
    parser.add_argument("--full-grid", action="store_true",
                        help="only: time to screen the whole 5-element 5 at.%% grid (adds to the results file)")
    args = parser.parse_args()
    import distributed

    designer, model = build_designer(args.run_dir, args.steps)
    if args.ten_million or args.full_grid:
        text = append_section(long_runs(designer, model, args.ten_million, args.full_grid, args.chunk_size))
        print(text, end="")
        write_text(OUT, text)
        print(f"wrote {OUT}")
        return
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
    section_4 = read_results()[1]  # the long runs are kept: they are rerun only on request
    if section_4:
        text += "\n" + "\n".join(section_4) + "\n"
    write_text(OUT, text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

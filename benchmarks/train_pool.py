"""Benchmark: training with 10^6 unlabelled candidates streams them; memory stays bounded.

Fits the default model on Pei 2020 (paper split, seed 0) for a few hundred
mini-batch steps, once with no pool and once with a pool of the first 10^6
alloys of the 6-element 5 at.% grid of the default palette (a generated
space: the rows are built batch by batch, never all at once). Each fit runs
in its own child process, so that its peak resident memory (``ru_maxrss``)
is its own. Prints the peak RSS and the median milliseconds per step of
each, and their ratios.

Usage::

    python benchmarks/train_pool.py [--candidates 1000000] [--steps 100]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time


def fit(n_candidates: int, steps: int, queue) -> None:
    import numpy as np
    import torch

    from pyro_hea import PhaseModel, load_dataset, paper_split
    from pyro_hea.data.candidates import CandidatePool, split_exclusions
    from pyro_hea.data.datasets import element_vocabulary
    from pyro_hea.design.distributed import SpaceSpec
    from pyro_hea.design.space import DEFAULT_PALETTE
    from pyro_hea.infer.training import AUTO_BATCH_SIZE

    torch.set_num_threads(1)
    df = load_dataset("pei2020")
    split = paper_split(df, seed=0)
    pool = None
    if n_candidates:
        spec = SpaceSpec(DEFAULT_PALETTE, 6, grid_step=5.0, limit=n_candidates)
        pool = CandidatePool.from_space(spec, element_vocabulary(df), exclude=split_exclusions(df, split))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    import pyro.infer

    step = pyro.infer.SVI.step

    def timed_step(self, *args, **kwargs):
        start = time.perf_counter()
        out = step(self, *args, **kwargs)
        times.append(time.perf_counter() - start)
        return out

    pyro.infer.SVI.step = timed_step
    started = time.perf_counter()
    model = PhaseModel.fit(df, split, progress=False, steps=steps, batch_size=AUTO_BATCH_SIZE, candidates=pool)
    queue.put({"candidates": len(pool) if pool is not None else 0, "steps": model.trainer.state.step,
               "seconds": time.perf_counter() - started, "ms_per_step": 1000 * float(np.median(times)),
               "rss_before_fit_mib": before,
               "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "pool_bytes": int(getattr(pool, "nbytes", 0)) if pool is not None else 0})


def run(n_candidates: int, steps: int) -> dict:
    ctx = mp.get_context("spawn")  # a fresh process: its peak RSS is this fit's alone
    queue = ctx.Queue()
    proc = ctx.Process(target=fit, args=(n_candidates, steps, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=10**6)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    rows = [run(0, args.steps), run(args.candidates, args.steps)]
    for r in rows:
        print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()}))
    base, pool = rows
    print(f"\nmini-batches of 1,024 alloys, {args.steps} steps, 1 torch thread")
    print(f"no pool:              peak RSS {base['peak_rss_mib']:6.0f} MiB, {base['ms_per_step']:5.1f} ms per step")
    print(f"{pool['candidates']:,} candidates: peak RSS {pool['peak_rss_mib']:6.0f} MiB, "
          f"{pool['ms_per_step']:5.1f} ms per step (pool storage {pool['pool_bytes'] / 2**20:.1f} MiB)")
    print(f"ratio: peak RSS {pool['peak_rss_mib'] / base['peak_rss_mib']:.2f}x, step time "
          f"{pool['ms_per_step'] / base['ms_per_step']:.2f}x (a dense float32 tensor of the candidates alone "
          f"would take {pool['candidates'] * 55 * 4 / 2**20:,.0f} MiB)")


if __name__ == "__main__":
    main()

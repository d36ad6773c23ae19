"""Sweeps: one function over a grid of configurations, as Dask tasks, with a cache that resumes.

:func:`run_sweep` calls ``function(**config)`` for every configuration that
has no cached result yet (a seed x label-fraction x prior grid, a
benchmark study) and writes each result to the cache, atomically, as soon
as it arrives, so an interrupted sweep resumes where it stopped and a rerun
computes nothing. The results come back in configuration order.

- One worker and no scheduler: the configurations run in this process, one
  after the other, with no cluster to start.
- ``workers > 1``: a ``distributed.LocalCluster`` on the loopback
  interface, one single-threaded process per worker.
- ``scheduler="tcp://HOST:PORT"`` (or the ``DASK_SCHEDULER_ADDRESS``
  environment variable): an existing Dask cluster; one that cannot be
  reached is refused within seconds, naming its address
  (:class:`~pyro_hea.cluster.SchedulerUnreachable`).

A configuration whose worker dies is run again on another worker by the
scheduler (up to ``distributed.scheduler.allowed-failures`` times, 3 by
default); one that raises is run again ``retries`` times, then the sweep
stops with that error (the results that arrived before it stay cached).
Where a configuration runs does not change its result as long as it seeds
itself: the distributed sweep then equals the serial one bit for bit.

Examples
--------
>>> import tempfile
>>> cache = tempfile.mkdtemp()
>>> configs = [{"base": 2, "exp": 3}, {"base": 3, "exp": 2}]
>>> run_sweep(pow, configs, cache, progress=False).results
[8, 9]
>>> again = run_sweep(pow, configs, cache, progress=False)  # from the cache
>>> again.results, again.computed, again.cached
([8, 9], 0, 2)
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyro_hea.cluster import CONNECT_TIMEOUT, connected, resolve_scheduler
from pyro_hea.errors import PyroHeaError
from pyro_hea.io import write_json

__all__ = ["SweepError", "SweepResult", "config_key", "run_sweep"]


class SweepError(PyroHeaError):
    """Settings of a sweep that cannot work (no configuration is run)."""


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns.

    Attributes
    ----------
    results : list
        One result per configuration, in configuration order.
    computed, cached : int
        Configurations run now, and read from the cache.
    seconds : float
        Wall time of the sweep.
    where : str
        ``"in-process"``, ``"LocalCluster(N)"``, the scheduler address, or ``"client"``.
    workers : int
        Workers the computed configurations were spread over.
    """

    results: list
    computed: int
    cached: int
    seconds: float
    where: str
    workers: int


def config_key(config: dict) -> str:
    """The default cache file of a configuration: a hash of its JSON, ``<hash>.json``.

    Examples
    --------
    >>> config_key({"seed": 0, "fraction": 0.05}) == config_key({"fraction": 0.05, "seed": 0})
    True
    """
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16] + ".json"


def _load_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _call(function, config: dict):
    """The task each worker runs (a module-level function, so that workers import it by name)."""
    return function(**config)


def run_sweep(function: Callable[..., Any], configs: Sequence[dict], cache_dir: str | Path | None = None,
              key: Callable[[dict], str | Path] = config_key, *, workers: int = 1, scheduler: str | None = None,
              client=None, retries: int = 0, progress: bool = True, desc: str = "configurations",
              postfix: Callable[[dict, Any], str] | None = None,
              load: Callable[[Path], Any] = _load_json, save: Callable[[Path, Any], None] = write_json,
              upload: Sequence[str | Path] = (), timeout: float = CONNECT_TIMEOUT) -> SweepResult:
    """Run ``function(**config)`` for each configuration without a cached result; cache each result.

    Parameters
    ----------
    function : callable
        Picklable (a module-level function): the workers import it by name.
    configs : sequence of dict
        Keyword arguments of each call, in the order of the results (and of
        submission: put the longest first).
    cache_dir : str or Path, optional
        Where results are cached; None: nothing is cached or read back.
    key : callable
        ``key(config)``: the configuration's cache file, relative to ``cache_dir``.
    workers : int
        Local worker processes when no scheduler is given (1: in this process).
    scheduler : str, optional
        Address of an existing Dask scheduler (default: ``DASK_SCHEDULER_ADDRESS`` if set).
    client : distributed.Client, optional
        Use this client (and its cluster) instead.
    retries : int
        Times a configuration that raised is run again.
    progress : bool
        A progress bar with an ETA on stderr.
    desc : str
        The progress bar's label.
    postfix : callable, optional
        ``postfix(config, result)``: text shown beside the bar as each result arrives.
    load, save : callable
        ``load(path)`` reads a cached result; ``save(path, result)`` writes one
        atomically (default: JSON through :func:`pyro_hea.io.write_json`).
    upload : sequence of path
        Python files that define ``function``, sent to every worker of a
        cluster (``Client.upload_file``) for workers that cannot import them.
    timeout : float
        Seconds to wait for the scheduler.

    Returns
    -------
    SweepResult
        The results in configuration order, and how many were computed and cached.

    Raises
    ------
    SchedulerUnreachable
        The scheduler did not answer within ``timeout`` seconds.
    SweepError
        Settings that cannot work.

    Examples
    --------
    >>> run_sweep(pow, [{"base": 7, "exp": 2, "mod": 5}], progress=False).results  # nothing cached
    [4]
    """
    from tqdm.auto import tqdm

    for name, value, low in (("workers", workers, 1), ("retries", retries, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise SweepError(f"{name} must be an integer >= {low}, got {value!r}")
    started = time.perf_counter()
    configs = [dict(c) for c in configs]
    paths = [None if cache_dir is None else Path(cache_dir) / key(c) for c in configs]
    if len({p for p in paths if p is not None}) < sum(p is not None for p in paths):
        raise SweepError("two configurations share a cache file: the key must tell every configuration apart")
    results: list = [None] * len(configs)
    pending = []
    for i, path in enumerate(paths):
        if path is not None and path.is_file():
            results[i] = load(path)
        else:
            pending.append(i)
    scheduler = None if client is not None else resolve_scheduler(scheduler)
    bar = tqdm(total=len(configs), initial=len(configs) - len(pending), desc=desc, unit="config",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)

    def take(i: int, result) -> None:
        if paths[i] is not None:
            save(paths[i], result)
        results[i] = result
        if postfix is not None:
            bar.set_postfix_str(postfix(configs[i], result))
        bar.update(1)

    where, used = "in-process", 1
    try:
        if not pending:
            where, used = "cache", 0
        elif client is None and scheduler is None and workers == 1:
            for i in pending:
                take(i, _run_here(function, configs[i], retries))
        else:
            with connected(client, scheduler, min(workers, len(pending)), timeout) as (client, where):
                used = len(client.scheduler_info().get("workers", {})) or workers
                for path in upload:
                    client.upload_file(str(path), load=False)
                _run_tasks(client, function, configs, pending, retries, take)
    finally:
        bar.close()
    return SweepResult(results, len(pending), len(configs) - len(pending), time.perf_counter() - started,
                       where, used)


def _run_here(function, config: dict, retries: int):
    for attempt in range(retries + 1):
        try:
            return function(**config)
        except Exception as err:
            if attempt == retries:
                err.add_note(f"in the sweep configuration {config!r}")
                raise


def _run_tasks(client, function, configs, pending, retries, take) -> None:
    """Submit every pending configuration (first ones first) and feed each result to ``take`` as it arrives."""
    from distributed import as_completed

    token = time.time_ns()
    futures = {client.submit(_call, function, configs[i], key=f"sweep-{i}-{token}", retries=retries,
                             pure=False, priority=len(configs) - i): i for i in pending}
    try:
        for future in as_completed(list(futures), loop=client.loop):
            i = futures.pop(future)
            try:
                result = future.result()
            except Exception as err:
                err.add_note(f"in the sweep configuration {configs[i]!r}")
                raise
            take(i, result)
            future.release()
    finally:
        if futures:  # stopped early (an error, an interrupt): the rest is not wanted
            client.cancel(list(futures))

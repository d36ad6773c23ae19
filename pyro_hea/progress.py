"""A progress bar over the stages of a long command, with an ETA; silent under ``--quiet``."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def stages(names, desc: str, quiet: bool = False):
    """Yield ``step(name)``; each call marks the previous stage done and shows ``name`` as running.

    Examples
    --------
    >>> with stages(["one", "two"], "demo", quiet=True) as step:
    ...     step("one"); step("two")
    """
    from tqdm.auto import tqdm

    names = list(names)
    # disable=None: no bar when stderr is not a terminal (a log file, a pipe), so errors stay one line.
    bar = tqdm(total=len(names), desc=desc, unit="stage", disable=True if quiet else None, leave=False,
               bar_format="{desc}: {n_fmt}/{total_fmt} stages |{bar}| {elapsed}<{remaining} {postfix}")
    started = [False]

    def step(name: str) -> None:
        if started[0]:
            bar.update(1)
        started[0] = True
        bar.set_postfix_str(name)

    try:
        yield step
        if started[0]:
            bar.update(1)
    finally:
        bar.close()

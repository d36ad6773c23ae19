"""``pyro-hea data``: summarize a dataset."""

from __future__ import annotations

import json

from pyro_hea.data.datasets import element_vocabulary, load_dataset


def summarize(df) -> dict:
    """Counts of a loaded dataset, as printed by ``pyro-hea data``.

    Examples
    --------
    >>> from pyro_hea.data.datasets import load_dataset
    >>> summarize(load_dataset("pei2020"))["n_alloys"]
    1055
    """
    report = df.attrs.get("report", {})
    labels = df["single_phase"]
    return {
        "source": report.get("source"),
        "n_read": report.get("n_read"),
        "n_alloys": int(len(df)),
        "n_labelled": int(labels.notna().sum()),
        "n_single_phase": int((labels == 1).sum()),
        "n_multi_phase": int((labels == 0).sum()),
        "phase_counts": {str(k): int(v) for k, v in df["phase"].value_counts().items()},
        "n_elements": len(element_vocabulary(df)),
        "elements": element_vocabulary(df),
        "n_dropped": int(sum(report.get("dropped", {}).values())),
        "dropped": report.get("dropped", {}),
        "dropped_elements": report.get("dropped_elements", {}),
        "n_duplicates_merged": report.get("n_duplicates_merged", 0),
        "n_label_conflicts": len(report.get("conflicts", [])),
        "n_label_conflicts_unlabelled": int((df["label_conflict"] & labels.isna()).sum()),
    }


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="load a dataset and print a summary of it")
    p.add_argument("--dataset", default="pei2020", help="pei2020 (default), borg2020, peivaste2023 or a CSV path")
    p.add_argument("--formula-column", default="formula", help="formula column of a CSV file")
    p.add_argument("--label-column", default="auto", help="label column of a CSV file")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(run=run)


def run(args) -> int:
    df = load_dataset(args.dataset, formula_column=args.formula_column, label_column=args.label_column)
    s = summarize(df)
    if args.json:
        print(json.dumps(s))
        return 0
    print(f"dataset        {s['source']}")
    print(f"alloys         {s['n_alloys']} (read {s['n_read']}, {s['n_duplicates_merged']} duplicates merged)")
    print(
        f"labelled       {s['n_labelled']} ({s['n_label_conflicts']} conflicting duplicates, "
        f"{s['n_label_conflicts_unlabelled']} of them left unlabelled)"
    )
    print(f"single-phase   {s['n_single_phase']}")
    print(f"multi-phase    {s['n_multi_phase']}")
    print(f"phases         {s['phase_counts']}")
    print(f"elements       {s['n_elements']}: {' '.join(s['elements'])}")
    print(f"dropped        {s['n_dropped']}")
    for reason, n in s["dropped"].items():
        print(f"  {n} alloys: {reason}")
    if s["dropped_elements"]:
        print(f"  alloys dropped per element: {', '.join(f'{e} {c}' for e, c in s['dropped_elements'].items())}")
    return 0

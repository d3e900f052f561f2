"""benchmarks/results/: the dated JSON files the benchmarks write, and the newest of each.

Benchmarks, BENCHMARKS.md's checks and the tests that hold the README to the
recorded figures all find a result the same way: `newest("quality-nottingham-valid")`
is the file with the latest date among `quality-nottingham-valid-DATE.json`
(not `quality-nottingham-valid-TAG-DATE.json`, a tagged variant).
"""

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def newest(stem, folder=RESULTS):
    """The newest `folder/STEM-YYYY-MM-DD.json`, or None."""
    pattern = re.compile(rf"{re.escape(stem)}-\d{{4}}-\d\d-\d\d\.json")
    found = sorted(p for p in Path(folder).glob(f"{stem}-*.json") if pattern.fullmatch(p.name))
    return found[-1] if found else None

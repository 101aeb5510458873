"""Speed and memory benchmarks (``python -m espnet2_gram.benchmarks.<name>``)."""

import json
from typing import Optional

from espnet2_gram.utils.fileio import atomic_open


def report(result: dict, out: Optional[str], text: str) -> None:
    """Write ``result`` as JSON to ``out`` (when given) and print its Markdown ``text``."""
    if out:
        with atomic_open(out) as f:
            json.dump(result, f, indent=2)
    print(text)

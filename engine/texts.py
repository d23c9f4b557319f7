"""Long public-domain texts shipped in resources/texts (see prepare_texts.py there for sources)."""

import functools
import gzip
from pathlib import Path

TEXTS = Path(__file__).resolve().parents[1] / "resources" / "texts"


@functools.cache
def public_domain_text(name: str = "kjv") -> str:
    with gzip.open(TEXTS / f"{name}.txt.gz", "rt", encoding="utf-8") as handle:
        return handle.read()

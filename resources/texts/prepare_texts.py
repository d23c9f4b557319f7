"""Prepare the long public-domain texts Infinibook benchmarks, trains and evaluates on, offline.

Sources (each from Debian's packages, nothing downloaded from elsewhere):
- kjv.txt.gz: the King James Bible, from Debian's `bible-kjv-text` package (read with the
  `bible` program of `bible-kjv`). Licence: public domain. Verse references are dropped and
  each chapter becomes a paragraph, so it reads as continuous prose.

Run: `apt-get install bible-kjv` then `python resources/texts/prepare_texts.py`. The result is
committed, so nobody else needs to run this.
"""

import gzip
import re
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSE = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")


def kjv_prose() -> str:
    raw = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True).stdout
    paragraphs, current, key = [], [], None
    for line in raw.splitlines():
        match = VERSE.match(line.strip())
        if not match:
            continue
        book, chapter, _, text = match.groups()
        if (book, chapter) != key and current:
            paragraphs.append(" ".join(current))
            current = []
        key = (book, chapter)
        current.append(text.strip())
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs) + "\n"


def main() -> None:
    text = kjv_prose()
    with gzip.open(HERE / "kjv.txt.gz", "wt", encoding="utf-8", compresslevel=9) as handle:
        handle.write(text)
    print(f"kjv.txt.gz: {len(text):,} characters, {text.count(chr(10) * 2) + 1:,} paragraphs")


if __name__ == "__main__":
    main()

"""Times the engine against `naive_reference` on the same segments, with `bench ingest`'s passes.

    python -m tests.engine.infini.bench_against_naive [TOKENS] [SEGMENT]

Prints tokens/s of all four passes and each one's ratio to the plain forward and the backbone.
The engine streams on packed weights, as `bench ingest`'s does; the naive version calls the
modules as they are, as code written the obvious way would.
"""

import json
import sys

from engine.infini import load_engine
from engine.infini.bench import ingest_passes, streaming_speeds

from .naive_reference import naive_segment


def main(tokens: int = 16384, segment: int = 1024) -> dict:
    model = load_engine(None, adapter="default", device="auto", segment=segment)
    passes = ingest_passes(model)
    passes["naive"] = (lambda chunk, memories: naive_segment(model, chunk, memories)[1], model.empty_memories())
    speed, _ = streaming_speeds(model, passes, tokens)
    report = {f"{name}_tokens_per_s": round(value, 1) for name, value in speed.items()}
    for name in ("infini", "naive"):
        report[f"{name}_ratio"] = round(speed[name] / speed["baseline"], 3)
        report[f"{name}_ratio_backbone"] = round(speed[name] / speed["backbone"], 3)
    return {"tokens": tokens, "segment": segment, **report}


if __name__ == "__main__":
    print(json.dumps(main(*map(int, sys.argv[1:]))))

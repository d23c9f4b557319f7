"""A process that ingests one book with the tiny model, printing each event as a JSON line.

    python -m tests.engine.reading.ingest_child DATA_DIR BOOK_ID [SEGMENT]

The kill tests SIGKILL it at chosen events and then check the library it leaves behind.
"""

import json
import sys
from dataclasses import asdict

import torch


def main() -> None:
    data_dir, book_id = sys.argv[1], int(sys.argv[2])
    segment = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    torch.set_num_threads(1)
    from engine import api
    from tests.engine.reading.helpers import tiny

    engine = tiny(segment)
    with api.open_library(data_dir) as library:
        print(json.dumps({"event": "ready"}), flush=True)
        api.ingest(library, book_id, engine, on_event=lambda e: print(json.dumps(asdict(e)), flush=True))
    print(json.dumps({"event": "done"}), flush=True)


if __name__ == "__main__":
    main()

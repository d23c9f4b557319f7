"""Reading a book into memory: ingest (resumable, cancellable, with progress) and its status."""

from .events import IngestEvent, ReadStatus, StaleMemory
from .ingest import chapter_ids, encode, ingest, load_state, read_status, require_fresh

__all__ = ["IngestEvent", "ReadStatus", "StaleMemory", "chapter_ids", "encode", "ingest", "load_state",
           "read_status", "require_fresh"]

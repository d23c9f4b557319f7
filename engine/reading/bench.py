"""Ingest scaling: peak memory and time of `infinibook ingest` on books of different lengths.

    python -m engine.reading.bench --tokens 15000 150000 [--model M] [--threads 1] [--json]

Each size is a book of real prose (the shipped KJV text) in chapters of `--chapter-tokens`,
read by a fresh `infinibook ingest --json` process in its own library; peak RSS is that
process's (os.wait4), time is from its first to its last event (model loading excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.texts import write_prose_book


def measure(tokens: int, chapter_tokens: int, model: str | None, threads: int | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="infinibook-ingest-bench-") as folder:
        chapters = max(1, round(tokens / chapter_tokens))
        book = write_prose_book(Path(folder) / f"book-{tokens}.md", tokens, chapters)
        command = [sys.executable, "-m", "app", "ingest", str(book), "--json", "--data-dir", str(Path(folder) / "lib"),
                   "--device", "cpu"]
        if model:
            command += ["--model", model]
        env = dict(os.environ)
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        root = Path(__file__).resolve().parents[2]
        process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, text=True)
        started = finished = None
        last = {}
        for line in process.stdout:
            event = json.loads(line)
            if event.get("event") == "start":
                started = time.perf_counter()
            elif event.get("event") == "progress":
                last = event
            elif event.get("event") == "done":
                finished = time.perf_counter()
        _, status, usage = os.wait4(process.pid, 0)
        if status != 0 or started is None or finished is None:
            raise RuntimeError(f"ingest of the {tokens}-token book failed (status {status})")
        seconds = finished - started
        return {
            "tokens": last.get("tokens_total"),
            "chapters": last.get("chapters_total"),
            "ingest_s": round(seconds, 2),
            "tokens_per_s": round(last.get("tokens_total", 0) / seconds, 1),
            "peak_rss_bytes": usage.ru_maxrss * 1024,  # Linux reports KiB
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[15000, 150000])
    parser.add_argument("--chapter-tokens", type=int, default=5000)
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = [measure(n, args.chapter_tokens, args.model, args.threads) for n in args.tokens]
    base = results[0]
    for result in results:
        result["rss_vs_first"] = round(result["peak_rss_bytes"] / base["peak_rss_bytes"], 4)
        result["time_per_token_vs_first"] = round(
            (result["ingest_s"] / result["tokens"]) / (base["ingest_s"] / base["tokens"]), 3)
        print(json.dumps(result) if args.json else
              f"{result['tokens']:>8,} tokens, {result['chapters']:>3} chapters: {result['ingest_s']:>8.1f} s "
              f"({result['tokens_per_s']:.0f} tok/s, x{result['time_per_token_vs_first']} per token), "
              f"peak RSS {result['peak_rss_bytes'] / 2**20:,.1f} MiB (x{result['rss_vs_first']})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`infinibook bench ...`: benchmarks that measure the real thing, ours against the bare model."""

import argparse
import json

from .common import add_common_options, positive_int


def register(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="benchmarks: ingest speed and memory, answer latency")
    kinds = bench.add_subparsers(dest="bench_kind", metavar="KIND")
    ingest = kinds.add_parser("ingest", help="Infini streaming vs the plain model on the same segments")
    add_common_options(ingest, model=True, library=False)
    ingest.add_argument("--tokens", type=positive_int, default=16384, help="tokens of real prose to stream")
    ingest.add_argument("--segment", type=positive_int, default=None, help="segment length (default: the adapter's)")
    ingest.add_argument("--repeats", type=positive_int, default=2, help="runs per pass; the fastest counts")
    ingest.set_defaults(handler=run_ingest)
    ask = kinds.add_parser("ask", help="reopen an ingested book and answer: snapshot load, first token, tokens/s")
    add_common_options(ask, model=True, library=False)
    ask.add_argument("--tokens", type=positive_int, default=8192, help="tokens of real prose in the book read first")
    ask.add_argument("--repeats", type=positive_int, default=3, help="reopen-and-answer runs; the median counts")
    ask.add_argument("--max-tokens", type=positive_int, default=48, help="longest answer, in tokens")
    ask.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch (default: torch's own)")
    ask.set_defaults(handler=run_ask)
    bench.set_defaults(handler=lambda args: bench.print_help() or 1)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def run_ingest(args) -> int:
    from engine.infini.bench import run_bench_ingest

    result = run_bench_ingest(
        model=args.model, adapter=args.adapter or "default", device=args.device, dtype=args.dtype,
        tokens=args.tokens, segment=args.segment, repeats=args.repeats,
    )
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['tokens']:,} tokens of prose, segments of {result['segment']}")
    print(f"  infini streaming     {result['infini_tokens_per_s']:>10,.1f} tokens/s")
    print(f"  plain forward        {result['baseline_tokens_per_s']:>10,.1f} tokens/s   ratio {result['ratio']:.3f}")
    print(f"  backbone, no LM head {result['backbone_tokens_per_s']:>10,.1f} tokens/s   ratio {result['ratio_backbone']:.3f}")
    print(f"  memory state         {human_bytes(result['memory_bytes']):>14}  (fixed, whatever the length)")
    print(f"  fp16 KV cache        {human_bytes(result['kv_cache_bytes']):>14}  "
          f"({result['kv_cache_bytes'] / result['memory_bytes']:,.0f}x the memory)")
    print(f"  peak RSS             {human_bytes(result['peak_rss_bytes']):>14}")
    return 0


def run_ask(args) -> int:
    from engine.assistant.bench import run_bench_ask

    result = run_bench_ask(args.model, adapter=args.adapter or "default", device=args.device, dtype=args.dtype,
                           tokens=args.tokens,
                           repeats=args.repeats, max_new_tokens=args.max_tokens, threads=args.threads)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['model']} on {result['device']}: a {result['book_tokens']:,}-token book in "
          f"{result['chapters']} chapters, read in {result['ingest_s']:.1f} s; answers from a reopened library")
    print(f"  load snapshot        {result['load_snapshot_s']:>10.4f} s   ({human_bytes(result['snapshot_bytes'])})")
    print(f"  first token          {result['first_token_s']:>10.4f} s   (median of {result['repeats']}; "
          f"slowest {result['first_token_max_s']:.4f} s)")
    print(f"  generation           {result['tokens_per_s']:>10.1f} tokens/s")
    return 0

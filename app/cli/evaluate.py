"""`infinibook eval` commands: passkey, recall, ppl, each with a memory-off control; key-signal, a probe."""

import argparse
import json
import sys
import zlib
from pathlib import Path

from engine.errors import BookError

from .common import add_common_options, positive_int, positive_ints


def _depth(text: str) -> str:
    """A depth as the evaluation reads it (start, middle, end or 0-1), checked while parsing so a
    typo is one usage line rather than a traceback after the model has loaded."""
    # the evaluation's own rule (this loads torch, as every eval command does anyway)
    from engine.evaluation import parse_depth

    try:
        parse_depth(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text.strip()}' is not a depth; use start, middle, end or a number between 0 and 1") from None
    return text.strip()


def _depths(text: str) -> list[str]:
    depths = [_depth(x) for x in text.split(",") if x.strip()]
    if not depths:
        raise argparse.ArgumentTypeError("no depth given; use start, middle, end or numbers between 0 and 1")
    return depths


def _model_options(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser, model=True, library=False)
    parser.add_argument("--segment", type=positive_int, default=None, help="segment length (default: the adapter's)")
    parser.add_argument("--batch", type=positive_int, default=4, help="prompts streamed together")
    parser.add_argument("--tiny", action="store_true", help="a tiny random Llama (smoke tests)")
    parser.add_argument("--no-progress", action="store_true")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("eval", help="measure what the memory remembers (with a memory-off control)")
    tasks = parser.add_subparsers(dest="eval_task", metavar="TASK")

    passkey = tasks.add_parser("passkey", help="the paper's pass-key retrieval: a 5-digit key hidden in filler")
    _model_options(passkey)
    passkey.add_argument("--lengths", type=positive_ints, default=[8192, 32768, 131072])
    passkey.add_argument("--depths", type=_depths, default=["start", "middle", "end"])
    passkey.add_argument("--samples", type=positive_int, default=2, help="keys per length and depth")
    passkey.add_argument("--seed", type=int, default=0)
    passkey.set_defaults(handler=run_passkey)

    recall = tasks.add_parser("recall", help="facts planted in a real long text, asked after all of it")
    _model_options(recall)
    recall.add_argument("file", help="a long .txt/.md file (or .gz)")
    recall.add_argument("--depths", type=_depths, default=["start", "middle", "end"])
    recall.add_argument("--samples", type=positive_int, default=2)
    recall.add_argument("--max-tokens", type=positive_int, default=None, help="use only the first N tokens of the text")
    recall.add_argument("--seed", type=int, default=0)
    recall.set_defaults(handler=run_recall)

    ppl = tasks.add_parser("ppl", help="perplexity of a long text streamed with memory vs memory-off")
    _model_options(ppl)
    ppl.add_argument("file")
    ppl.add_argument("--max-tokens", type=positive_int, default=None)
    ppl.set_defaults(handler=run_ppl)

    signal = tasks.add_parser("key-signal", help="probe: how much each layer's memory read at the question "
                                                  "still depends on the pass key, per length")
    _model_options(signal)
    signal.add_argument("--lengths", type=positive_ints, default=[8192, 32768, 131072])
    signal.add_argument("--depth", type=_depth, default="start", help="where the key sits: start, middle, end or 0-1")
    signal.add_argument("--min-gate", type=float, default=0.5, help="show layers whose most open gate is at least this")
    signal.set_defaults(handler=run_key_signal)
    parser.set_defaults(handler=lambda args: (parser.print_help(), 1)[1])


def _load(args):
    if args.tiny:
        from engine.infini.tiny import tiny_engine

        return tiny_engine(segment=args.segment or 32)
    from engine.infini import load_engine

    adapter = args.adapter or "default"
    return load_engine(args.model, adapter=adapter, device=args.device, segment=args.segment, dtype=args.dtype)


def _read_text(path: str) -> str:
    """The whole text of a plain, gzipped or book file; one clear sentence when unreadable or
    empty (an empty text would only fail deep inside the evaluation, after the model load)."""
    try:
        text = _read_text_file(Path(path))
    except (OSError, EOFError, zlib.error) as error:  # EOFError, zlib.error: a damaged .gz
        raise BookError(f"cannot read {path}; give a readable text file.") from error
    if not text.strip():
        raise BookError(f"{path} holds no text; give a file with some prose to measure.")
    return text


def _read_text_file(file: Path) -> str:
    import gzip

    if not file.is_file():
        raise FileNotFoundError(file)
    if file.suffix == ".gz":
        with gzip.open(file, "rt", encoding="utf-8", errors="replace") as handle:
            return handle.read()
    if file.suffix.lower() in (".txt", ".md", ""):
        return file.read_text(encoding="utf-8", errors="replace")
    from engine.books import load_book  # EPUB/PDF through the book parser

    return "\n\n".join(chapter.text for chapter in load_book(file).chapters)


def _progress(args, total: int | None = None):
    if args.no_progress or args.json:
        return None, None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="tok", dynamic_ncols=True, file=sys.stderr)
    return bar, (lambda done, _total: bar.update(done))


def _count_to(bar):
    """A progress callback for a bar whose total is only known once the run reports it."""
    if bar is None:
        return None

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return update


def _header(model) -> str:
    return f"model fingerprint: adapter={model.adapter_sha[:12]} segment={model.segment} rule={model.rule}"


def _print_json(model, **fields) -> None:
    print(json.dumps({"segment": model.segment, "adapter": model.adapter_sha, **fields}))


def _print_rows(rows, args, model) -> None:
    if args.json:
        _print_json(model, rows=rows)
        return
    print(_header(model))
    print(f"{'length':>8} {'depth':>7} {'n':>3} {'memory':>8} {'memory-off':>10} {'starts right':>13}")
    for row in rows:
        n = row["samples"]
        print(f"{row['length']:>8} {row['depth']:>7} {n:>3} {row['memory'] / n:>8.0%} {row['control'] / n:>10.0%}"
              f" {row['memory_prefix'] / n:>13.0%}")


def _evaluate(args, evaluate):
    """Load the model and run `evaluate(model, progress)` under a progress bar: (model, result)."""
    model = _load(args)
    bar, progress = _progress(args)
    result = evaluate(model, progress)
    if bar is not None:
        bar.close()
    return model, result


def _run_table(args, evaluate) -> int:
    """`_evaluate`, then print its rows as a table with the memory-off control."""
    model, rows = _evaluate(args, evaluate)
    _print_rows(rows, args, model)
    return 0


def run_passkey(args) -> int:
    from engine.evaluation import passkey

    return _run_table(args, lambda model, progress: passkey(
        model, args.lengths, args.depths, args.samples, seed=args.seed, batch=args.batch, progress=progress))


def run_recall(args) -> int:
    from engine.evaluation import recall

    text = _read_text(args.file)
    return _run_table(args, lambda model, progress: recall(
        model, text, args.depths, args.samples, max_tokens=args.max_tokens, seed=args.seed,
        batch=args.batch, progress=progress))


def run_ppl(args) -> int:
    from engine.evaluation import ppl_with_control

    text = _read_text(args.file)
    model = _load(args)
    bar, progress = _progress(args)
    result = ppl_with_control(model, text, max_tokens=args.max_tokens,
                              progress=_count_to(bar))
    if bar is not None:
        bar.close()
    if args.json:
        _print_json(model, **result)
    else:
        print(_header(model))
        print(f"tokens: {result['tokens']}")
        print(f"perplexity with memory:  {result['memory']['ppl']:.3f}")
        print(f"perplexity empty memory: {result['empty_memory']['ppl']:.3f}  (gates on, nothing written)")
        print(f"perplexity memory-off:   {result['control']['ppl']:.3f}")
    return 0


def run_key_signal(args) -> int:
    from engine.evaluation import parse_depth
    from engine.evaluation.probes import key_signal

    depth = parse_depth(args.depth)
    model, rows = _evaluate(args, lambda model, progress: key_signal(model, args.lengths, depth, progress=progress))
    if args.json:
        _print_json(model, rows=rows)
        return 0
    print(_header(model))
    print("|A_mem(key 1) - A_mem(key 2)| / |A_mem(key 1)| at the question, the layer's most open head")
    by_layer: dict[int, dict] = {}
    for row in rows:
        by_layer.setdefault(row["layer"], {"gate": row["gate"]})[row["length"]] = row["signal"]
    shown = {layer: values for layer, values in by_layer.items() if values["gate"] >= args.min_gate}
    print(f"{'layer':>5} {'gate':>6} " + " ".join(f"{length:>9}" for length in args.lengths))
    for layer, values in shown.items():
        print(f"{layer:>5} {values['gate']:>6.3f} " + " ".join(f"{values[length]:>9.4f}" for length in args.lengths))
    if not shown:
        print(f"no layer has a gate of {args.min_gate} or more: the memory is barely read (try --min-gate 0)")
    return 0

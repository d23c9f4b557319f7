"""`bench ingest`: Infini streaming against the same model's plain forward, on the same segments.

Three passes over the same N tokens of real prose, cut into the same segments:
- infini:   our streaming into memory (no LM head; the last layer stops after its keys/values);
- baseline: the unpatched model's ordinary forward with logits, what a user would otherwise run;
- backbone: the unpatched decoder alone, no LM head: the practical ceiling.
The passes take turns segment by segment, and each segment's fastest of `repeats` runs counts.
"""

import contextlib
import functools
import itertools
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from engine.texts import public_domain_text

from .model import InfiniModel


@dataclass(frozen=True)
class IngestBenchmark:
    tokens: int
    segment: int
    infini_tokens_per_s: float
    baseline_tokens_per_s: float
    backbone_tokens_per_s: float
    ratio: float
    ratio_backbone: float
    memory_bytes: int
    kv_cache_bytes: int
    peak_rss_bytes: int

    def as_dict(self) -> dict:
        return asdict(self)


def prose_token_ids(model: InfiniModel, tokens: int) -> list[int]:
    text = public_domain_text("kjv")
    ids: list[int] = []
    start, step = 0, 200_000
    while len(ids) < tokens and start < len(text):
        ids.extend(model.tokenizer.encode(text[start : start + step], add_special_tokens=False))
        start += step
    if len(ids) < tokens:  # longer than the text: read it again, as a very long book would
        ids = (ids * (tokens // len(ids) + 1))
    return ids[:tokens]


def no_wait() -> None:
    """The CPU's work is done when a call returns: nothing to wait for."""


def waiter(device: torch.device) -> Callable[[], None]:
    """What waits for a device's queued work: a GPU runs kernels after their launch has returned,
    so a pass timed without waiting would be billed only its launches (and the next pass its work)."""
    return functools.partial(torch.cuda.synchronize, device) if device.type == "cuda" else no_wait


def _timed(work, *args, wait: Callable[[], None] = no_wait):
    wait()  # work queued before is not billed to this pass
    started = time.perf_counter()
    result = work(*args)
    wait()
    return time.perf_counter() - started, result


Pass = tuple[Callable, object]  # work(segment, carry) -> next carry; the first carry


def time_interleaved(passes: dict[str, Pass], segments: list[torch.Tensor], repeats: int = 2,
                     wait: Callable[[], None] = no_wait):
    """Seconds per pass over all segments, and each pass's last carry (its memory, say).

    Segment by segment, the passes take turns on the same segment, and each keeps its fastest of
    `repeats` runs: a shared machine's load drifts over minutes, and interleaving makes all passes
    see the same drift. The turns go through every order of the passes, so each follows each
    other as often: a pass inherits the caches and the allocator's state its predecessor left,
    and rotating one order would give each pass always the same predecessor.
    """
    names = list(passes)
    orders = list(itertools.permutations(names))
    carries = {name: first for name, (_, first) in passes.items()}
    totals = dict.fromkeys(names, 0.0)
    for name, (work, _) in passes.items():  # warm-up
        work(segments[0], carries[name])
    for index, segment in enumerate(segments):
        best, results = dict.fromkeys(names, float("inf")), {}
        for repeat in range(repeats):
            for name in orders[(index * repeats + repeat) % len(orders)]:
                elapsed, results[name] = _timed(passes[name][0], segment, carries[name], wait=wait)
                best[name] = min(best[name], elapsed)
        carries = results
        for name in names:
            totals[name] += best[name]
    return totals, carries


def ingest_passes(model: InfiniModel) -> dict[str, Pass]:
    """Our streaming, the unpatched model's plain forward, and its backbone alone."""
    decoder = model.lm.get_decoder()

    def baseline(segment, _carry):
        with model.unpatched() as lm:
            lm(input_ids=segment, use_cache=False)

    def backbone(segment, _carry):
        with model.unpatched():
            decoder(input_ids=segment, use_cache=False)

    return {
        "infini": (lambda segment, state: model.stream(segment[0], state), model.new_state()),
        "baseline": (baseline, None),
        "backbone": (backbone, None),
    }


def prose_speeds(model: InfiniModel, passes: dict[str, Pass], tokens: int, repeats: int = 2,
                 setup_seconds: dict[str, float] | None = None):
    """Tokens/s of each pass over the same `tokens` tokens of prose, and each pass's last carry;
    `setup_seconds` are billed to their passes on top."""
    ids = torch.tensor([prose_token_ids(model, tokens)], device=model.device)
    with torch.inference_mode():
        totals, carries = time_interleaved(passes, list(ids.split(model.segment, dim=1)), repeats,
                                           wait=waiter(model.device))
    setup = setup_seconds or {}
    return {name: tokens / (seconds + setup.get(name, 0.0)) for name, seconds in totals.items()}, carries


def streaming_speeds(model: InfiniModel, passes: dict[str, Pass], tokens: int, repeats: int = 2):
    """`prose_speeds` with the "infini" pass on weights packed as a book's reading packs them
    (`packed_for_streaming`), the packing's time billed to it; the other passes never use them."""
    with contextlib.ExitStack() as book:
        packing_seconds, _ = _timed(book.enter_context, model.packed_for_streaming(tokens))
        return prose_speeds(model, passes, tokens, repeats, {"infini": packing_seconds})


def bench_ingest(model: InfiniModel, tokens: int = 16384, repeats: int = 2) -> IngestBenchmark:
    speed, carries = streaming_speeds(model, ingest_passes(model), tokens, repeats)
    state = carries["infini"]
    return IngestBenchmark(
        tokens=tokens,
        segment=model.segment,
        infini_tokens_per_s=round(speed["infini"], 1),
        baseline_tokens_per_s=round(speed["baseline"], 1),
        backbone_tokens_per_s=round(speed["backbone"], 1),
        ratio=round(speed["infini"] / speed["baseline"], 3),
        ratio_backbone=round(speed["infini"] / speed["backbone"], 3),
        memory_bytes=state.nbytes,
        kv_cache_bytes=tokens * model.kv_cache_bytes_per_token,
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    )


def run_bench_ingest(*, model=None, adapter="default", device="auto", dtype="auto", tokens=16384, segment=None,
                     repeats=2) -> dict:
    from . import load_engine

    engine = load_engine(model, adapter=adapter, device=device, segment=segment, dtype=dtype)
    return bench_ingest(engine, tokens=tokens, repeats=repeats).as_dict()

"""`bench ingest`: Infini streaming against the same model's plain forward, on the same segments.

Three passes over the same N tokens of real prose, cut into the same segments:
- infini:   our streaming into memory (no LM head; the last layer stops after its keys/values);
- baseline: the unpatched model's ordinary forward with logits, what a user would otherwise run;
- backbone: the unpatched decoder alone, no LM head: the practical ceiling.
Each pass runs `repeats` times, alternating, and the fastest run counts (the machine is shared).
"""

import resource
import time
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


def _timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def bench_ingest(model: InfiniModel, tokens: int = 16384, repeats: int = 2) -> IngestBenchmark:
    ids = torch.tensor([prose_token_ids(model, tokens)], device=model.device)
    segments = list(ids.split(model.segment, dim=1))
    state = model.new_state()
    result = {}

    def infini():
        result["state"] = model.stream(ids[0], state)

    def plain_forward(with_head: bool):
        with model.unpatched() as lm, torch.inference_mode():
            run = lm if with_head else lm.get_decoder()
            for segment in segments:
                run(input_ids=segment, use_cache=False)

    passes = {"infini": infini, "baseline": lambda: plain_forward(True), "backbone": lambda: plain_forward(False)}
    with torch.inference_mode():  # warm-up: one segment each
        model.stream(segments[0][0], state)
        with model.unpatched() as lm:
            lm(input_ids=segments[0], use_cache=False)
    best = {name: min(_timed(work) for _ in range(1)) for name, work in passes.items()}
    for _ in range(repeats - 1):
        for name, work in passes.items():
            best[name] = min(best[name], _timed(work))
    speed = {name: tokens / seconds for name, seconds in best.items()}
    return IngestBenchmark(
        tokens=tokens,
        segment=model.segment,
        infini_tokens_per_s=round(speed["infini"], 1),
        baseline_tokens_per_s=round(speed["baseline"], 1),
        backbone_tokens_per_s=round(speed["backbone"], 1),
        ratio=round(speed["infini"] / speed["baseline"], 3),
        ratio_backbone=round(speed["infini"] / speed["backbone"], 3),
        memory_bytes=result["state"].nbytes,
        kv_cache_bytes=tokens * model.kv_cache_bytes_per_token,
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    )


def run_bench_ingest(*, model=None, adapter="default", device="auto", tokens=16384, segment=None, repeats=2) -> dict:
    from . import load_engine

    engine = load_engine(model, adapter=adapter, device=device, segment=segment)
    return bench_ingest(engine, tokens=tokens, repeats=repeats).as_dict()

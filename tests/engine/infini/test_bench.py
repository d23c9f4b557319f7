"""bench ingest measures all three passes over the same segments (tiny model: shape, not speed)."""

from engine.infini.bench import bench_ingest
from engine.infini.tiny import tiny_engine


def test_bench_ingest_reports_every_key_and_a_fixed_memory(tokenizer):
    model = tiny_engine(tokenizer=tokenizer, segment=64)
    short = bench_ingest(model, tokens=128, repeats=1).as_dict()
    long = bench_ingest(model, tokens=640, repeats=1).as_dict()
    assert set(short) == {"tokens", "segment", "infini_tokens_per_s", "baseline_tokens_per_s",
                          "backbone_tokens_per_s", "ratio", "ratio_backbone", "memory_bytes",
                          "kv_cache_bytes", "peak_rss_bytes"}
    assert short["memory_bytes"] == long["memory_bytes"] > 0
    assert long["kv_cache_bytes"] == 5 * short["kv_cache_bytes"]
    assert all(long[k] > 0 for k in ("infini_tokens_per_s", "baseline_tokens_per_s", "backbone_tokens_per_s"))


def test_each_pass_is_billed_the_device_work_it_queued():
    """On a GPU a call returns once its kernels are queued: the timer waits for the device before
    and after each pass, so a pass's queued work counts for it and not for the pass after it."""
    import time

    import torch

    from engine.infini.bench import no_wait, time_interleaved, waiter

    queued = []

    def wait():  # a device that takes 20 ms to run what a pass queued
        while queued:
            queued.pop()
            time.sleep(0.02)

    passes = {"queues": (lambda segment, carry: queued.append(1), None), "idle": (lambda segment, carry: None, None)}
    totals, _ = time_interleaved(passes, [torch.zeros(1)] * 3, repeats=1, wait=wait)
    assert totals["queues"] >= 0.06 and totals["idle"] < 0.03, totals
    assert waiter(torch.device("cpu")) is no_wait


def test_every_pass_follows_every_other_as_often():
    """A pass inherits the caches its predecessor left: no pass may always come after the same one."""
    from collections import Counter

    import torch

    from engine.infini.bench import time_interleaved

    calls = []
    passes = {name: (lambda segment, carry, name=name: calls.append(name), None) for name in ("a", "b", "c")}
    time_interleaved(passes, [torch.zeros(1)] * 6, repeats=2)
    timed = calls[3:]  # after the warm-up
    assert Counter(timed) == {"a": 12, "b": 12, "c": 12}
    follows = Counter(zip(timed, timed[1:], strict=False))
    assert {pair for pair in follows if pair[0] != pair[1]} == {(x, y) for x in "abc" for y in "abc" if x != y}
    assert max(follows.values()) - min(follows[pair] for pair in follows if pair[0] != pair[1]) <= 2, follows

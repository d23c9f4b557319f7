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

"""Evaluating the memory: passkey retrieval, recall of planted facts, perplexity; each with the
memory-off control."""

from .tasks import parse_depth, passkey, perplexity, ppl_with_control, recall

__all__ = ["parse_depth", "passkey", "perplexity", "ppl_with_control", "recall"]

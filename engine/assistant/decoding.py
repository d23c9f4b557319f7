"""Token ids -> text pieces as they are generated, without breaking multi-byte characters.

A byte-level tokenizer can split one character (an emoji, an accented letter) across several
tokens; decoding token by token would print replacement characters. We decode a short running
window and yield only the new suffix once it no longer ends in an incomplete character (the
prefix/read offset scheme of vLLM and text-generation-inference), so the concatenation of the
pieces equals the decoding of the whole sequence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

REPLACEMENT = "\ufffd"


class TextDecoder:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0  # start of the decoding window (gives leading spaces their context)
        self.read = 0  # end of what has been yielded

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def push(self, token: int) -> str:
        """Add one token; the text it completes ('' while a character is still incomplete)."""
        self.ids.append(int(token))
        before = self._decode(self.ids[self.prefix : self.read])
        after = self._decode(self.ids[self.prefix :])
        if len(after) > len(before) and not after.endswith(REPLACEMENT):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        """Whatever is still held back at the end (an incomplete character stays as it decodes)."""
        if self.read == len(self.ids):
            return ""
        before = self._decode(self.ids[self.prefix : self.read])
        after = self._decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return after[len(before) :] if after.startswith(before) else after

    @property
    def text(self) -> str:
        return self._decode(self.ids)


def decode_stream(tokenizer, tokens: Iterable[int]) -> Iterator[str]:
    """Text pieces of a token stream; ''.join(pieces) == tokenizer.decode(all tokens)."""
    decoder = TextDecoder(tokenizer)
    for token in tokens:
        piece = decoder.push(token)
        if piece:
            yield piece
    tail = decoder.flush()
    if tail:
        yield tail

"""What a memory state is only meaningful under: base weights, adapter, segment length, rule.

Plain data without torch, so the library, the reading status and the window can compare
fingerprints without loading a model.
"""

from dataclasses import dataclass, fields

from engine.errors import FingerprintMismatch, LibraryError

ENGINE_VERSION = "1"


@dataclass(frozen=True)
class Fingerprint:
    base: str  # sha256 of the base weights
    adapter: str  # sha256 of the adapter file, or "none"
    segment: int
    rule: str
    engine: str = ENGINE_VERSION

    def __str__(self) -> str:
        return ";".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))

    @classmethod
    def parse(cls, text: str) -> "Fingerprint":
        try:
            parts = dict(item.split("=", 1) for item in text.split(";"))
            return cls(parts["base"], parts["adapter"], int(parts["segment"]), parts["rule"], parts["engine"])
        except (KeyError, ValueError) as error:
            raise LibraryError(f"A saved memory has an unreadable fingerprint ({text!r}); re-read the book.") from error

    def difference(self, other: "Fingerprint") -> str | None:
        """The first thing that differs, in words, or None when both are the same."""
        names = {"base": "base model", "adapter": "memory adapter", "segment": "segment length",
                 "rule": "memory update rule", "engine": "engine version"}
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if mine != theirs:
                return f"{names[f.name]} ({str(theirs)[:12]} then, {str(mine)[:12]} now)"
        return None


def check_fingerprint(expected: Fingerprint, found: Fingerprint) -> None:
    difference = expected.difference(found)
    if difference:
        raise FingerprintMismatch(
            f"This memory was made with a different {difference}; re-read the book to rebuild it."
        )

"""One error family for everything a person can get wrong or run into.

Each error's message is one sentence a reader understands: what is wrong and what to do.
The command line prints it on one line without a traceback; the window shows it in a dialog.
"""


class InfinibookError(Exception):
    """Base of every error the engine raises on purpose."""


class BookError(InfinibookError):
    """A file cannot be read as a book (corrupt, encrypted, DRM, empty, hostile, ...)."""


class LibraryError(InfinibookError):
    """The library database cannot do what was asked (unknown book, corrupted snapshot, ...)."""


class ModelError(InfinibookError):
    """A model cannot be found, loaded or used (missing file, unsupported architecture, ...)."""


class TrainingError(InfinibookError):
    """A training run cannot start as asked (nothing to resume, a folder holding another run, ...)."""


class EvaluationError(InfinibookError):
    """An evaluation cannot run as asked (a text or a prompt length too short for the segment, ...)."""


class FingerprintMismatch(InfinibookError):
    """A memory state was made by another model, adapter, segment length or update rule."""


class Cancelled(InfinibookError):
    """Long work was cancelled by the person; whatever finished is kept."""

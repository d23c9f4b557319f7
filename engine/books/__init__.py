"""Books in: EPUB, PDF, plain text and Markdown parsed into chapters in reading order.

`load_book` is the one entry point. The format is decided by the file's content, not its
name; every failure, however hostile the file, is a `BookError` with one sentence a reader
understands.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from pathlib import Path

from engine.errors import BookError

from .limits import MAX_FILE_BYTES, MAX_TEXT_BYTES, MIB
from .model import Book, Chapter, storable

__all__ = ["Book", "Chapter", "detect_format", "load_book", "file_sha256", "storable"]

_MARKDOWN_EXT = {".md", ".markdown", ".mdown", ".mkd", ".mkdn"}
_TEXT_EXT = {".txt", ".text"}
# Formats people try that Infinibook does not read, recognised by their first bytes.
_FOREIGN = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x7fELF", "a program"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office document"),
    (b"{\\rtf", "an RTF document"),
    (b"%!PS", "a PostScript file"),
    (b"AT&TFORM", "a DjVu document"),
    (b"SQLite format 3\x00", "a database file"),
)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in chunks: a book's identity in the library."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    return h.hexdigest()


def _unsupported(name: str, what: str, hint: str = "save it as EPUB, PDF or plain text and add that") -> BookError:
    return BookError(f"'{name}' is {what}, not a book format Infinibook reads; {hint}.")


def _zip_kind(path: Path, name: str) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            mimetype = b""
            if "mimetype" in names and zf.getinfo("mimetype").file_size < 100:
                mimetype = zf.read("mimetype").strip()
    except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError) as e:
        if path.suffix.lower() == ".epub":
            raise BookError(f"'{name}' is a damaged EPUB (the ZIP container is broken or truncated); try another copy of the book.") from e
        raise BookError(f"'{name}' is a damaged ZIP archive and cannot be read as a book; try another copy.") from e
    if mimetype == b"application/epub+zip" or "META-INF/container.xml" in names:
        return "epub"
    if "word/document.xml" in names:
        raise _unsupported(name, "a Word document")
    if "content.xml" in names or mimetype.startswith(b"application/vnd.oasis.opendocument"):
        raise _unsupported(name, "an OpenDocument file")
    if path.suffix.lower() == ".epub":
        raise BookError(f"'{name}' is a ZIP archive without the parts every EPUB has (META-INF/container.xml); it is damaged or not an EPUB.")
    raise _unsupported(name, "a ZIP archive", "unpack it and add the book inside")


_PRINTABLE = frozenset(b"\t\n\f\r") | frozenset(range(0x20, 0x7F))


def _pdf_header(head: bytes) -> bool:
    """%PDF- first, or within the first KB after binary junk (readers accept that); not in the
    first lines of a text file that merely mentions it."""
    at = head.find(b"%PDF-", 0, 1024)
    return at == 0 or (at > 0 and not _PRINTABLE.issuperset(head[:at]))


def detect_format(path: str | os.PathLike, head: bytes | None = None) -> str:
    """"epub", "pdf", "txt" or "md" from the file's first bytes (the extension only chooses
    between text and Markdown); anything else is a BookError."""
    p = Path(path)
    name = p.name
    if head is None:
        with open(p, "rb") as f:
            head = f.read(4096)
    if _pdf_header(head):
        return "pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(p, name)
    if head[60:68] in (b"BOOKMOBI", b"TEXtREAd"):
        raise _unsupported(name, "a Kindle (MOBI/AZW) book", "convert it to EPUB, for example with Calibre, and add that")
    for magic, what in _FOREIGN:
        if head.startswith(magic):
            raise _unsupported(name, what)
    if head.startswith(b"PK") and len(head) >= 4 and head[2] < 9 and head[3] < 9:  # PK + record type
        raise BookError(f"'{name}' is a damaged ZIP archive and cannot be read as a book; try another copy.")
    suffix = p.suffix.lower()
    if suffix in _MARKDOWN_EXT:
        return "md"
    if suffix not in _TEXT_EXT and (head.startswith(b"# ") or b"\n# " in head or b"\n## " in head):
        return "md"
    return "txt"


def _parse(p: Path, size: int, fmt: str) -> Book:
    name = p.name
    if fmt in ("txt", "md") and size > MAX_TEXT_BYTES:
        raise BookError(
            f"'{name}' is {size // MIB} MB of text, more than the {MAX_TEXT_BYTES // MIB} MB "
            "Infinibook reads from one text file; split it into smaller files."
        )
    sha = file_sha256(p)
    if fmt == "epub":
        from .epub import parse_epub

        return parse_epub(p, sha)
    if fmt == "pdf":
        from .pdf import parse_pdf

        return parse_pdf(p, sha)
    from .text import parse_text

    return parse_text(p, p.read_bytes(), sha, fmt)


def load_book(path: str | os.PathLike) -> Book:
    """Parse one file into a Book; raises BookError (one clear sentence) for anything wrong."""
    p = Path(path)
    name = p.name or str(p)
    try:
        st = p.stat()
    except FileNotFoundError as e:
        raise BookError(f"'{p}' does not exist; check the path and try again.") from e
    except OSError as e:
        raise BookError(f"'{p}' cannot be opened ({e.strerror or e}); check the path and its permissions.") from e
    if p.is_dir():
        raise BookError(f"'{p}' is a folder, not a book file; pick the EPUB, PDF or text file itself.")
    if not p.is_file():
        raise BookError(f"'{p}' is not a regular file; pick the EPUB, PDF or text file itself.")
    if st.st_size == 0:
        raise BookError(f"'{name}' is empty (0 bytes); the download or copy probably failed, so get the book again.")
    if st.st_size > MAX_FILE_BYTES:
        raise BookError(f"'{name}' is {st.st_size // MIB} MB, larger than the {MAX_FILE_BYTES // MIB} MB Infinibook reads; split it into volumes.")
    fmt = "file"
    try:
        fmt = detect_format(p)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # parser libraries warn about what we report ourselves
            book = _parse(p, st.st_size, fmt)
    except BookError:
        raise
    except PermissionError as e:
        raise BookError(f"'{name}' cannot be read (permission denied); check its permissions.") from e
    except MemoryError as e:
        raise BookError(f"'{name}' needs more memory than is available to read; split it into volumes.") from e
    except RecursionError as e:
        raise BookError(f"'{name}' is nested too deeply to read safely (a damaged or hostile file); try another copy.") from e
    except Exception as e:  # a parser library tripped over a malformed file
        kind = {"epub": "an EPUB", "pdf": "a PDF", "txt": "text", "md": "Markdown"}.get(fmt, "a book")
        raise BookError(
            f"'{name}' could not be read as {kind} ({type(e).__name__}); it is probably damaged, "
            "so try another copy of the book."
        ) from e
    if not book.chapters:
        raise BookError(f"'{name}' contains no readable text; check that you picked the right file.")
    return book

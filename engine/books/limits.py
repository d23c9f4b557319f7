"""Caps that keep parsing bounded in time and memory whatever a file claims about itself.

They are generous for real books (the longest novels are a few MB of text) and small enough
that a hostile file is refused before it can exhaust memory.
"""

MIB = 1024 * 1024

# Any input file.
MAX_FILE_BYTES = 1024 * MIB
# Plain text / Markdown files (War and Peace is ~3 MB).
MAX_TEXT_BYTES = 64 * MIB
# Text of a whole parsed book, any format.
MAX_BOOK_CHARS = 64 * MIB
MAX_CHAPTERS = 5000

# EPUB (ZIP) containers.
MAX_ZIP_ENTRIES = 20_000
MAX_ZIP_ENTRY_BYTES = 128 * MIB
MAX_ZIP_TOTAL_BYTES = 768 * MIB
# Text compresses ~3-10x; a ratio this high on a large member is a zip bomb.
MAX_ZIP_RATIO = 200
ZIP_RATIO_MIN_BYTES = 2 * MIB

# XML entity declarations in one document (real EPUBs rarely declare any).
MAX_XML_ENTITIES = 256
MAX_XML_ENTITY_VALUE = 4096

# PDF.
MAX_PDF_PAGES = 20_000
# Page content streams, decoded, counting a stream shared by many pages once per page: text
# extraction takes about a second per MB here, so a tiny file whose pages all draw one huge
# stream would take hours. Real books: a few KB to a few hundred KB a page, 3-10x their file.
MAX_PDF_CONTENT_BYTES = 512 * MIB
MAX_PDF_CONTENT_RATIO = 200
PDF_CONTENT_RATIO_MIN_BYTES = 16 * MIB
MAX_OUTLINE_DEPTH = 64
MAX_OUTLINE_ENTRIES = 20_000

# Chapters a text without headings is cut into, and PDF page groups without an outline.
TEXT_PART_CHARS = 40_000
PDF_PAGES_PER_PART = 20
# Untitled text before the first chapter is kept as "Front matter" only if at least this
# long (non-space characters); title pages, copyright notices and printed contents are not.
FRONT_MATTER_MIN_CHARS = 3000

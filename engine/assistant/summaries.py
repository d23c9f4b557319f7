"""Chapter and whole-book summaries.

Chapter summary. The memory is reset at the chapter's start (a new, empty memory: nothing of
the earlier chapters), the chapter is read, then the summary prompt follows:
  * No silent truncation: a chapter longer than one segment is not cut to fit a context window;
    everything before its last part is streamed through the compressive memory, segment by
    segment, like any book text. However long the chapter, every token of it is read.
  * Its last part, as much as fits in the prompt's segment next to the instruction and the room
    for the answer, is not streamed into memory but put verbatim in the prompt, so the model
    sees the chapter's end in full-resolution local attention (which also carries the summary
    when the memory gates are untrained). Memory part + prompt part = the whole chapter, each
    token exactly once.
The summary is stored under the current fingerprint; regenerating replaces it, except with an
empty summary, which is never stored (a good one is not wiped out by a model that wrote nothing).

Whole-book summary. Built from the chapter summaries (made first where missing or made under
another fingerprint) read against the memory at the end of the book. When the summaries do not
fit one prompt next to the answer, consecutive ones are summarised group by group, and those
group summaries again, until they fit (hierarchical); every group holds at least two (a lone
last one goes on to the next round as it is), so this ends after about log2(chapters) rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from engine.errors import LibraryError, ModelError
from engine.reading.ingest import chapter_ids, encode, fingerprint_of, load_state, require_fresh

from .ask import by_line, check_max_new_tokens, generate_text

CHAPTER_SUMMARY_TOKENS = 200
BOOK_SUMMARY_TOKENS = 300
MIN_GROUP_BUDGET = 256  # tokens of summaries per prompt when the segment is tiny


@dataclass
class ChapterPlan:
    chapter_idx: int
    memory_ids: list[int]  # streamed into a fresh memory
    window_ids: list[int]  # the chapter's end, put verbatim into the prompt
    messages: list[dict[str, str]]
    prompt_ids: list[int]


def _chapter(library, book_id: int, chapter_idx: int):
    for chapter in library.chapters(book_id):
        if chapter.idx == chapter_idx:
            return chapter
    raise LibraryError(f"There is no chapter {chapter_idx + 1} in this book.")


def _chapter_messages(book, chapter, window_text: str, whole: bool) -> list[dict[str, str]]:
    number = chapter.idx + 1
    system = (f'You are Infinibook, a reading assistant. You have just read chapter {number} of the book '
              f'"{book.title}"{by_line(book.author)}: "{chapter.title}".')
    if not window_text:
        lead = "You have read the whole chapter into your memory."
    elif whole:
        lead = f"The chapter:\n\n{window_text}"
    else:
        lead = f"The chapter's last part (what came before it is in your memory):\n\n{window_text}"
    instruction = (f'Summarise chapter {number} ("{chapter.title}") in a few sentences: the main events, '
                   f"the people involved and what changes.")
    return [{"role": "system", "content": system}, {"role": "user", "content": f"{lead}\n\n{instruction}"}]


def plan_chapter_summary(library, book_id: int, engine, chapter_idx: int,
                         max_new_tokens: int = CHAPTER_SUMMARY_TOKENS) -> ChapterPlan:
    check_max_new_tokens(max_new_tokens)
    book = library.get_book(book_id)
    chapter = _chapter(library, book_id, chapter_idx)
    ids = chapter_ids(engine, chapter)
    overhead = len(engine.chat_prompt(_chapter_messages(book, chapter, "x", whole=False)))
    room = max(0, engine.segment - overhead - max_new_tokens)  # what fits of the chapter's end
    split = max(0, len(ids) - room)
    while True:
        split = _character_start(engine, ids, split)
        memory_ids, window_ids = ids[:split], ids[split:]
        window_text = engine.tokenizer.decode(window_ids).strip() if window_ids else ""
        messages = _chapter_messages(book, chapter, window_text, whole=not memory_ids)
        prompt_ids = engine.chat_prompt(messages)
        # The window is re-tokenised inside the prompt, which can take a few tokens more than
        # its ids: give those back to the memory until the prompt and the answer fit.
        over = len(prompt_ids) + max_new_tokens - engine.segment
        if over <= 0 or split >= len(ids):
            return ChapterPlan(chapter_idx, memory_ids, window_ids, messages, prompt_ids)
        split += over


def _character_start(engine, ids: list[int], split: int) -> int:
    """`split`, moved forward to where a character begins in `ids`.

    A byte-level tokenizer cuts one character (CJK, emoji) across tokens; a window starting
    inside one would begin with a replacement character. The boundary moves forward, never
    back, so the window never outgrows its room; a character is at most 4 bytes, so decoding
    4 tokens completes the first one and at most 3 steps are needed."""
    for _ in range(3):
        if not 0 < split < len(ids) or not engine.tokenizer.decode(ids[split:split + 4]).startswith("\ufffd"):
            break
        split += 1
    return split


def summarize_chapter(library, book_id: int, engine, chapter_idx: int, *,
                      should_cancel: Callable[[], bool] | None = None,
                      max_new_tokens: int = CHAPTER_SUMMARY_TOKENS) -> Iterator[str]:
    """Summary pieces as generated; stored at the end (replacing an earlier one). An empty
    summary is not stored: a ModelError says so and the earlier one stays."""
    plan = plan_chapter_summary(library, book_id, engine, chapter_idx, max_new_tokens)

    def pieces() -> Iterator[str]:
        collected: list[str] = []
        yield from _chapter_pieces(engine, plan, should_cancel, max_new_tokens, collected)
        _save_summary(library, book_id, chapter_idx, "".join(collected), engine)

    return pieces()


def _chapter_pieces(engine, plan: ChapterPlan, should_cancel: Callable[[], bool] | None, max_new_tokens: int,
                    into: list[str]) -> Iterator[str]:
    """The chapter's summary as generated, collected in `into`; stores nothing."""
    state = engine.new_state()  # reset at the chapter's start
    if plan.memory_ids:
        state = engine.stream(plan.memory_ids, state, should_cancel=should_cancel)
    yield from generate_text(engine, plan.prompt_ids, state, max_new_tokens=max_new_tokens,
                             should_cancel=should_cancel, into=into)


def _save_summary(library, book_id: int, chapter_idx: int | None, text: str, engine) -> None:
    """Store a generated summary, replacing the earlier one, unless it is empty: a model that
    wrote nothing (or only spaces) must not wipe out a good summary."""
    text = text.strip()
    if not text:
        what = "the whole book" if chapter_idx is None else f"chapter {chapter_idx + 1}"
        raise ModelError(f"The model wrote an empty summary of {what}, so nothing was stored (an earlier summary "
                         f"is kept); try again with a trained adapter or another model.")
    library.save_summary(book_id, chapter_idx, text, fingerprint_of(engine))


def current_summaries(library, book_id: int, engine) -> dict[int | None, str]:
    """Stored summaries made under the current fingerprint, by chapter index (None: the book)."""
    fingerprint = fingerprint_of(engine)
    return {s.chapter_idx: s.text for s in library.summaries(book_id) if s.fingerprint == fingerprint}


def _group_messages(book, items: list[str], heading: str, instruction: str) -> list[dict[str, str]]:
    system = (f'You are Infinibook, a reading assistant. You have read the whole book "{book.title}"'
              f"{by_line(book.author)}.")
    body = "\n\n".join(items)
    return [{"role": "system", "content": system}, {"role": "user", "content": f"{heading}\n\n{body}\n\n{instruction}"}]


def _groups(engine, book, items: list[str], budget: int) -> list[list[int]]:
    """Consecutive item indexes whose texts fit `budget` tokens together, at least two a group;
    a lone last item stays a group of its own (added to the full group before it, it would carry
    that group's prompt past the segment)."""
    groups: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index, item in enumerate(items):
        size = len(encode(engine, item)) + 2
        if len(current) >= 2 and used + size > budget:
            groups.append(current)
            current, used = [], 0
        current.append(index)
        used += size
    if current:
        groups.append(current)
    return groups


def _span_messages(book, items: list[str], first: int, last: int) -> list[dict[str, str]]:
    """The prompt summarising the summaries of chapters `first` to `last` (1-based) together."""
    span = f"chapters {first} to {last}"
    return _group_messages(book, items, f"Summaries of {span}:", f"Summarise {span} together in a few sentences.")


def summarize_book(library, book_id: int, engine, *, should_cancel: Callable[[], bool] | None = None,
                   max_new_tokens: int = BOOK_SUMMARY_TOKENS, chapter_max_new_tokens: int = CHAPTER_SUMMARY_TOKENS,
                   on_chapter: Callable[[int, int], None] | None = None) -> Iterator[str]:
    """Whole-book summary pieces as generated; stored at the end (replacing an earlier one),
    unless empty (a ModelError then says so and the earlier one stays).

    Chapter summaries missing under the current engine are made first (`on_chapter(i, n)` is
    called before each; an empty one is left unstored, to be made again next time); the book
    must have been read to its end.
    """
    check_max_new_tokens(max_new_tokens)
    check_max_new_tokens(chapter_max_new_tokens)
    status = require_fresh(library, book_id, engine)
    if status.chapters_total == 0 or status.chapters_done < status.chapters_total:
        raise LibraryError(f"Read the whole book first ({status.chapters_done} of {status.chapters_total} "
                           f"chapters read); a whole-book summary needs the memory of the whole book.")
    book = library.get_book(book_id)
    chapters = library.chapter_sizes(book_id)
    final_idx = chapters[-1].idx

    def pieces() -> Iterator[str]:
        stored = current_summaries(library, book_id, engine)
        for chapter in chapters:
            if chapter.idx not in stored:
                if on_chapter is not None:
                    on_chapter(chapter.idx, len(chapters))
                plan = plan_chapter_summary(library, book_id, engine, chapter.idx, chapter_max_new_tokens)
                text = "".join(_chapter_pieces(engine, plan, should_cancel, chapter_max_new_tokens, [])).strip()
                if text:  # an empty one is not stored (nor fatal here): "(no summary)" below
                    _save_summary(library, book_id, chapter.idx, text, engine)
                stored[chapter.idx] = text
        state = load_state(library, book_id, final_idx, engine)
        items = [f'Chapter {c.idx + 1}, "{c.title}": {stored[c.idx] or "(no summary)"}' for c in chapters]
        labels = [(c.idx + 1, c.idx + 1) for c in chapters]
        final_instruction = "Write a summary of the whole book in one or two paragraphs."
        # A group's heading and instruction name its chapters: count the longest as well.
        last_number = chapters[-1].idx + 1
        overhead = max(len(engine.chat_prompt(_group_messages(book, [], "Chapter summaries:", final_instruction))),
                       len(engine.chat_prompt(_span_messages(book, [], last_number, last_number))))
        budget = max(engine.segment - overhead - max_new_tokens, MIN_GROUP_BUDGET)
        while sum(len(encode(engine, item)) + 2 for item in items) > budget and len(items) > 1:
            next_items, next_labels = [], []
            for group in _groups(engine, book, items, budget):
                if len(group) == 1:  # a lone last item goes on to the next round as it is
                    next_items.append(items[group[0]])
                    next_labels.append(labels[group[0]])
                    continue
                first, last = labels[group[0]][0], labels[group[-1]][1]
                messages = _span_messages(book, [items[i] for i in group], first, last)
                text = "".join(generate_text(engine, engine.chat_prompt(messages), state,
                                             max_new_tokens=max_new_tokens, should_cancel=should_cancel,
                                             into=[])).strip()
                next_items.append(f"Chapters {first} to {last}: {text or '(no summary)'}")
                next_labels.append((first, last))
            items, labels = next_items, next_labels
        messages = _group_messages(book, items, "Chapter summaries:", final_instruction)
        collected: list[str] = []
        yield from generate_text(engine, engine.chat_prompt(messages), state, max_new_tokens=max_new_tokens,
                                 should_cancel=should_cancel, into=collected)
        _save_summary(library, book_id, None, "".join(collected), engine)

    return pieces()

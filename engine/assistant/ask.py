"""Questions about a book, answered from its memory as of a chosen chapter: spoiler-free by construction.

The answer is generated from exactly two things:
  1. the memory snapshot saved at the end of the chosen chapter (it has read nothing after it),
  2. a new segment holding the prompt: a system line naming the book and the chapter, the recent
     turns of this book's conversation that were themselves asked as of that chapter or
     earlier, and the question.
No chapter text is put in the prompt and no later snapshot is loaded, so nothing after the
chosen chapter can reach the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from engine.books import storable
from engine.errors import Cancelled, LibraryError
from engine.reading.ingest import fingerprint_of, load_state, require_fresh

from .decoding import TextDecoder

HISTORY_MESSAGES = 6  # recent turns: three questions and their answers
HISTORY_MIN_TOKENS = 256
NO_ANSWER = "The model gave no answer, so the question was not kept; try asking it another way."


@dataclass
class AskPlan:
    chapter_idx: int  # the chapter whose end-of-chapter memory answers
    messages: list[dict[str, str]]  # the chat the prompt is made of
    prompt_ids: list[int]


def by_line(author: str | None) -> str:
    author = (author or "").strip()
    return f" by {author}" if author and author.lower() not in ("unknown", "unknown author") else ""


def choose_chapter(library, book_id: int, engine, as_of: int | None) -> int:
    """0-based chapter whose memory answers: `as_of`, or the last one read into memory."""
    status = require_fresh(library, book_id, engine)
    if status.chapters_done == 0:
        raise LibraryError("This book has not been read into memory yet; read it first (infinibook ingest).")
    if as_of is None:
        return status.chapters_done - 1
    if not 0 <= as_of < status.chapters_total:
        raise LibraryError(f"There is no chapter {as_of + 1}; this book has {status.chapters_total} chapters.")
    if as_of >= status.chapters_done:
        raise LibraryError(
            f"Chapter {as_of + 1} has not been read into memory yet (read so far: {status.chapters_done} "
            f"of {status.chapters_total}); finish reading the book first."
        )
    return as_of


def check_max_new_tokens(max_new_tokens: int) -> None:
    """Refuse an answer length below one token before anything is stored: it would only save an
    empty answer or summary (over a good one)."""
    if max_new_tokens < 1:
        raise LibraryError(f"An answer needs room for at least 1 token, not {max_new_tokens}; "
                           f"allow 1 or more tokens.")


def history_for(library, book_id: int, engine, chapter_idx: int, budget: int) -> list[dict[str, str]]:
    """Recent question/answer pairs asked as of `chapter_idx` or earlier (later turns could carry
    spoilers), newest kept first within `budget` tokens; unanswered questions are left out."""
    from engine.reading.ingest import encode

    allowed = [m for m in library.messages(book_id)
               if m.as_of_chapter is not None and m.as_of_chapter <= chapter_idx]
    pairs = []
    for question, answer in zip(allowed, allowed[1:], strict=False):
        if (question.role, answer.role) == ("user", "assistant") and question.content.strip() and answer.content.strip():
            pairs.append((question.content.strip(), answer.content.strip()))
    chosen: list[dict[str, str]] = []
    used = 0
    for question, answer in reversed(pairs[-(HISTORY_MESSAGES // 2):]):
        used += len(encode(engine, question)) + len(encode(engine, answer)) + 16
        if used > budget:
            break
        chosen[:0] = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return chosen


def system_line(book, chapter_idx: int, chapters_total: int, chapter_title: str) -> str:
    # Short on purpose: the prompt is run before the first token appears.
    return (
        f'You are Infinibook, a reading assistant. You have read "{book.title}"{by_line(book.author)} '
        f'up to the end of chapter {chapter_idx + 1} of {chapters_total} ("{chapter_title}") and know '
        f"nothing after it. Answer briefly."
    )


def plan_question(library, book_id: int, engine, question: str, as_of: int | None = None,
                  *, max_new_tokens: int = 256) -> AskPlan:
    """The chapter and prompt a question is answered with (also what the spoiler test inspects)."""
    question = question.strip()
    if not question:
        raise LibraryError("The question is empty; type a question about the book.")
    if storable(question) != question:  # undecodable bytes from a terminal in another encoding
        raise LibraryError("The question contains bytes that are not UTF-8 text; set your terminal to UTF-8 "
                           "and type it again.")
    check_max_new_tokens(max_new_tokens)
    chapter_idx = choose_chapter(library, book_id, engine, as_of)
    book = library.get_book(book_id)
    chapters = library.chapter_sizes(book_id)
    title = next((c.title for c in chapters if c.idx == chapter_idx), f"Chapter {chapter_idx + 1}")
    system = {"role": "system", "content": system_line(book, chapter_idx, len(chapters), title)}
    asked = {"role": "user", "content": question}
    check_question_fits(engine, system, question)
    budget = history_budget(engine, [system, asked], max_new_tokens)
    messages = [system, *history_for(library, book_id, engine, chapter_idx, budget), asked]
    return AskPlan(chapter_idx, messages, engine.chat_prompt(messages))


def check_question_fits(engine, system: dict[str, str], question: str) -> None:
    """Refuse, before anything is stored, a question local attention could not see whole when the
    answer begins: the part of it past the room would reach the model only through the memory.

    `generate` starts the prompt at the beginning of a segment and sends each full segment of it
    to the memory, leaving only the rest in local attention, so the room is what the
    instructions (the system line and the chat template, measured around an empty question)
    leave of one segment; the history only takes what the question leaves (`history_budget`).
    A segment too short for the instructions alone (tiny test settings) sends them to the memory
    whatever is asked; there a question must at least fit a segment with its own turn's tokens."""
    around = len(engine.chat_prompt([system, {"role": "user", "content": ""}]))
    room = engine.segment - around
    if room <= 0:
        room = engine.segment - (around - len(engine.chat_prompt([system])))
    used = len(engine.chat_prompt([system, {"role": "user", "content": question}])) - around
    if used > room:
        characters = len(question) * max(room, 0) // used  # at this question's own characters per token
        raise LibraryError(f"This question is too long for the model to read at once: it is {used:,} tokens and "
                           f"at most {max(room, 0):,} fit, roughly its first {characters:,} characters; shorten it.")


def history_budget(engine, bare: list[dict[str, str]], max_new_tokens: int) -> int:
    """Tokens of earlier turns a prompt may carry: half the room the answer leaves (at least
    HISTORY_MIN_TOKENS / 2), and no more than keeps the prompt `bare` of history in the segment
    with its answer where both fit, else the prompt alone: the history would otherwise push
    the start of the prompt (who is reading, up to which chapter), or then the question, out of
    local attention into the memory. Only a prompt over the segment anyway keeps the half."""
    budget = max(engine.segment - max_new_tokens, HISTORY_MIN_TOKENS) // 2
    prompt = len(engine.chat_prompt(bare))
    for free in (engine.segment - max_new_tokens - prompt, engine.segment - prompt):
        if free >= 0:
            return min(budget, free)
    return budget


# Greedy decoding of a small model loops ("The main events are: The main events are: ...")
# without a penalty on the answer's own tokens; 1.3 stopped that in our trials on SmolLM2-135M.
REPETITION_PENALTY = 1.3


def stop_ids(engine) -> list[int]:
    """The engine's stop tokens, looked up once per engine (the lookup scans the vocabulary)."""
    cached = getattr(engine, "_assistant_stop_ids", None)
    if cached is None:
        cached = engine.stop_ids()
        try:
            engine._assistant_stop_ids = cached
        except AttributeError:
            pass
    return cached


def generate_text(engine, prompt_ids: list[int], state, *, max_new_tokens: int,
                  should_cancel: Callable[[], bool] | None, into: list[str]) -> Iterator[str]:
    """Stream text pieces from the model; `into` collects them (kept even when cancelled)."""
    decoder = TextDecoder(engine.tokenizer)
    tokens = engine.generate(prompt_ids, state, max_new_tokens=max_new_tokens, stop_ids=stop_ids(engine),
                             repetition_penalty=REPETITION_PENALTY)
    for token in tokens:
        if should_cancel is not None and should_cancel():
            tokens.close()
            raise Cancelled("Generation was cancelled.")
        piece = decoder.push(token)
        if piece:
            into.append(piece)
            yield piece
    tail = decoder.flush()
    if tail:
        into.append(tail)
        yield tail


def ask(library, book_id: int, engine, question: str, *, as_of: int | None = None, max_new_tokens: int = 256,
        should_cancel: Callable[[], bool] | None = None) -> Iterator[str]:
    """Answer pieces as they are generated.

    Checks happen at the call (errors surface before any text). The question and its answer are
    stored together, in one transaction, when generation ends, also when it is cancelled or
    abandoned part-way; an answer dropped, failed or stopped before it said anything (blank
    lines are nothing) stores nothing, so no question is left in the history without its
    answer (the window and the command line then show `NO_ANSWER`). Both messages carry their
    as-of chapter.
    """
    plan = plan_question(library, book_id, engine, question, as_of, max_new_tokens=max_new_tokens)
    state = load_state(library, book_id, plan.chapter_idx, engine)

    def answer() -> Iterator[str]:
        pieces: list[str] = []
        try:
            yield from generate_text(engine, plan.prompt_ids, state, max_new_tokens=max_new_tokens,
                                     should_cancel=should_cancel, into=pieces)
        finally:
            if said := "".join(pieces).strip():
                library.add_messages(book_id, [("user", question.strip()), ("assistant", said)], plan.chapter_idx)

    return answer()


__all__ = ["AskPlan", "ask", "check_max_new_tokens", "check_question_fits", "choose_chapter", "fingerprint_of",
           "plan_question"]

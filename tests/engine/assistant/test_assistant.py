"""Ask, summaries and export end to end on generated books with a tiny random model."""

from __future__ import annotations

import pytest
import torch

from engine import api
from engine.assistant import TextDecoder, decode_stream, plan_chapter_summary
from engine.assistant import summaries as summaries_module
from engine.errors import Cancelled, LibraryError, ModelError
from engine.infini.state import MemoryState
from engine.reading import chapter_ids
from tests.engine.reading.helpers import tiny, write_book, writes

SECRET = "The lighthouse keeper is secretly named Zebediah Quillfeather."


def read_book(library, tmp_path, chapters=4, **options):
    book = library.resolve(str(write_book(tmp_path / "book.md", chapters=chapters, **options)), add_paths=True)
    api.ingest(library, book.id, tiny())
    return book


class Spy:
    """Records the prompt and memory every generate() call receives."""

    def __init__(self, engine, monkeypatch):
        self.calls = []
        original = engine.generate

        def generate(prompt_ids, state, **options):
            self.calls.append((list(prompt_ids), state.clone()))
            return original(prompt_ids, state, **options)

        monkeypatch.setattr(engine, "generate", generate)


def snapshot(library, book_id, chapter_idx):
    return MemoryState.from_bytes(library.load_snapshot(book_id, chapter_idx).blob)


def same(a, b):
    return torch.equal(a.memory, b.memory) and torch.equal(a.norm, b.norm) and a.tokens == b.tokens


# -- decoding --------------------------------------------------------------------------------------


def test_streamed_pieces_never_split_a_character():
    tokenizer = tiny().tokenizer
    text = "Déjà vu — naïve café 😀🎉 日本語のテキスト, and «quotes»."
    ids = tokenizer.encode(text, add_special_tokens=False)
    pieces = list(decode_stream(tokenizer, ids))
    assert "".join(pieces) == tokenizer.decode(ids) == text
    assert not any("\ufffd" in piece for piece in pieces)
    assert len(pieces) > 5
    decoder = TextDecoder(tokenizer)
    emoji = tokenizer.encode("😀", add_special_tokens=False)
    assert len(emoji) > 1 and [decoder.push(t) for t in emoji][:-1] == [""] * (len(emoji) - 1)
    assert decoder.text == "😀"


# -- ask -------------------------------------------------------------------------------------------


def test_ask_streams_and_stores_both_messages_with_their_chapter(library, tmp_path, monkeypatch):
    book = read_book(library, tmp_path)
    writes(tiny(), monkeypatch, " The numbers of the bridges.\n")
    pieces = list(api.ask(library, book.id, tiny(), "What did the traveller write down?", max_new_tokens=12))
    assert len(pieces) > 1
    messages = library.messages(book.id)
    assert [(m.role, m.as_of_chapter) for m in messages] == [("user", 3), ("assistant", 3)]
    assert messages[0].content == "What did the traveller write down?"
    assert messages[1].content == "".join(pieces).strip() == "The numbers of the bridges."


def test_an_answer_of_blank_lines_is_not_stored(library, tmp_path):
    """The tiny random model answers with newlines only: neither they nor the question are kept,
    finished or stopped part-way."""
    engine = tiny()
    book = read_book(library, tmp_path, chapters=2)
    pieces = list(api.ask(library, book.id, engine, "Anything?", max_new_tokens=12))
    assert pieces and not "".join(pieces).strip()
    calls = []
    with pytest.raises(Cancelled):
        list(api.ask(library, book.id, engine, "Go on?", max_new_tokens=12,
                     should_cancel=lambda: calls.append(1) or len(calls) > 3))
    assert library.messages(book.id) == []


def test_spoiler_free_by_construction(library, tmp_path, monkeypatch):
    """A fact only in chapter 4 never reaches an answer asked as of chapter 2: not in the prompt,
    not in the memory (exactly the memory after chapter 2), not through earlier chat turns."""
    engine = tiny()
    book = read_book(library, tmp_path, chapters=4, facts={3: SECRET})
    writes(engine, monkeypatch, "A keeper.")  # stored, so the last check can see its chapter
    spy = Spy(engine, monkeypatch)
    # A turn asked as of the last chapter mentions the secret; it must not come back as of chapter 2.
    list(api.ask(library, book.id, engine, "Is the keeper Zebediah Quillfeather?", max_new_tokens=4))
    library.add_message(book.id, "assistant", "Yes: Zebediah Quillfeather.", 3)
    list(api.ask(library, book.id, engine, "Who keeps the lighthouse?", as_of=1, max_new_tokens=4))
    prompt, state = spy.calls[-1]
    text = engine.tokenizer.decode(prompt)
    assert "Who keeps the lighthouse?" in text and "chapter 2 of 4" in text
    assert "Zebediah" not in text and "Quillfeather" not in text

    # The memory read is the one after chapter 2, which is chapters 1-2 streamed and nothing more.
    fresh = engine.new_state()
    for chapter in library.chapters(book.id)[:2]:
        fresh = engine.stream(chapter_ids(engine, chapter), fresh)
    assert same(state, fresh) and same(state, snapshot(library, book.id, 1))
    assert not same(state, snapshot(library, book.id, 2))
    assert library.messages(book.id)[-1].as_of_chapter == 1


def test_recent_turns_go_into_the_prompt(library, tmp_path):
    engine = tiny()
    book = read_book(library, tmp_path, chapters=3)
    library.add_message(book.id, "user", "Which bridge did he cross?", 1)
    library.add_message(book.id, "assistant", "The stone one.", 1)
    library.add_message(book.id, "user", "A question left unanswered?", 1)
    library.add_message(book.id, "assistant", "", 1)
    plan = api.plan_question(library, book.id, engine, "And after that?", as_of=2)
    roles = [m["role"] for m in plan.messages]
    assert roles[0] == "system" and roles[-2:] == ["assistant", "user"]
    assert plan.messages[1:3] == [{"role": "user", "content": "Which bridge did he cross?"},
                                  {"role": "assistant", "content": "The stone one."}]
    assert len(plan.messages) == 4
    assert plan.chapter_idx == 2
    # Asked as of chapter 1, the turn of chapter 2 is left out.
    assert [m["role"] for m in api.plan_question(library, book.id, engine, "Hm?", as_of=0).messages] == ["system", "user"]


def test_ask_refuses_chapters_not_read(library, tmp_path):
    engine = tiny()
    book = library.resolve(str(write_book(tmp_path / "book.md", chapters=3)), add_paths=True)
    with pytest.raises(LibraryError, match="not been read"):
        api.ask(library, book.id, engine, "Anything?")
    cancel_after_first_chapter = []
    with pytest.raises(Cancelled):
        api.ingest(library, book.id, engine, on_event=cancel_after_first_chapter.append,
                   should_cancel=lambda: any(e.finished_chapter for e in cancel_after_first_chapter))
    with pytest.raises(LibraryError, match="Chapter 2 has not been read"):
        api.ask(library, book.id, engine, "Anything?", as_of=1)
    with pytest.raises(LibraryError, match="no chapter 7"):
        api.ask(library, book.id, engine, "Anything?", as_of=6)
    assert library.messages(book.id) == []  # nothing stored for a refused question


def test_cancelled_answer_keeps_what_was_said(library, tmp_path, monkeypatch):
    engine = tiny()
    book = read_book(library, tmp_path, chapters=2)
    writes(engine, monkeypatch, "He crossed the bridge and then the meadow and then the river.")
    calls = []
    pieces = api.ask(library, book.id, engine, "Go on?", max_new_tokens=50,
                     should_cancel=lambda: calls.append(1) or len(calls) > 3)
    with pytest.raises(Cancelled):
        list(pieces)
    messages = library.messages(book.id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].content and "He crossed the bridge and then the meadow".startswith(messages[1].content)


def test_a_question_whose_answer_produced_nothing_is_not_stored(library, tmp_path, monkeypatch):
    """Dropped before its first piece, failing or stopped before it: no dangling question is stored."""
    engine = tiny()
    book = read_book(library, tmp_path, chapters=2)
    api.ask(library, book.id, engine, "Dropped at once?", max_new_tokens=8).close()
    with pytest.raises(Cancelled):
        list(api.ask(library, book.id, engine, "Stopped at once?", max_new_tokens=8, should_cancel=lambda: True))

    def broken(prompt_ids, state, **options):
        raise ModelError("The model ran out of memory.")

    monkeypatch.setattr(engine, "generate", broken)
    with pytest.raises(ModelError, match="out of memory"):
        list(api.ask(library, book.id, engine, "Failing at once?", max_new_tokens=8))
    assert library.messages(book.id) == []


# -- summaries -------------------------------------------------------------------------------------


def test_long_chapter_summary_reads_every_token_once(library, tmp_path, monkeypatch):
    engine = tiny()
    book = read_book(library, tmp_path, chapters=2, sentences=40)
    plan = plan_chapter_summary(library, book.id, engine, 1, max_new_tokens=8)
    ids = chapter_ids(engine, library.chapters(book.id)[1])
    assert len(ids) > 10 * engine.segment
    assert plan.memory_ids + plan.window_ids == ids  # no truncation: memory part + window = chapter

    writes(engine, monkeypatch, "He walks on.")
    spy = Spy(engine, monkeypatch)
    first = "".join(api.summarize_chapter(library, book.id, engine, 1, max_new_tokens=8)).strip()
    _, state = spy.calls[-1]
    # Memory reset at the chapter's start: only this chapter's memory part, nothing of chapter 1.
    assert same(state, engine.stream(plan.memory_ids, engine.new_state()))
    stored = [s for s in library.summaries(book.id) if s.chapter_idx == 1]
    assert [s.text for s in stored] == [first] and stored[0].fingerprint == str(engine.fingerprint)

    library.save_summary(book.id, 1, "an older summary", str(engine.fingerprint))
    list(api.summarize_chapter(library, book.id, engine, 1, max_new_tokens=8))
    assert [s.text for s in library.summaries(book.id) if s.chapter_idx == 1] == [first]  # replaced


def test_chapter_end_goes_into_the_window_when_the_segment_has_room(library, tmp_path):
    engine = tiny(256)
    book = library.resolve(str(write_book(tmp_path / "book.md", chapters=2, sentences=40)), add_paths=True)
    plan = plan_chapter_summary(library, book.id, engine, 0, max_new_tokens=16)
    assert plan.memory_ids and plan.window_ids
    assert len(plan.prompt_ids) + 16 <= engine.segment + 2
    assert engine.tokenizer.decode(plan.window_ids).strip() in engine.tokenizer.decode(plan.prompt_ids)


def test_book_summary_is_hierarchical_when_chapter_summaries_do_not_fit(library, tmp_path, monkeypatch):
    engine = tiny()
    book = read_book(library, tmp_path, chapters=5)
    monkeypatch.setattr(summaries_module, "MIN_GROUP_BUDGET", 40)
    for i, chapter in enumerate(library.chapters(book.id)):
        library.save_summary(book.id, chapter.idx, f"In chapter {i + 1} the traveller walked far and saw many things "
                             f"along the road near the {i}th mill.", str(engine.fingerprint))
    writes(engine, monkeypatch, "The traveller walks on.")
    spy = Spy(engine, monkeypatch)
    text = "".join(api.summarize_book(library, book.id, engine, max_new_tokens=6)).strip()
    assert len(spy.calls) > 1  # group summaries first, then the whole book
    final_state = snapshot(library, book.id, 4)
    assert all(same(state, final_state) for _, state in spy.calls)  # read against the final memory
    last_prompt = engine.tokenizer.decode(spy.calls[-1][0])
    assert "Chapters 1 to" in last_prompt and "whole book" in last_prompt
    assert [s.text for s in library.summaries(book.id) if s.chapter_idx is None] == [text]


def test_book_summary_makes_missing_chapter_summaries_and_needs_the_whole_book(library, tmp_path, monkeypatch):
    engine = tiny()
    book = read_book(library, tmp_path, chapters=3)
    writes(engine, monkeypatch, "The traveller walks on.")
    made = []
    list(api.summarize_book(library, book.id, engine, max_new_tokens=4, chapter_max_new_tokens=4,
                            on_chapter=lambda i, n: made.append((i, n))))
    assert made == [(0, 3), (1, 3), (2, 3)]
    assert [s.chapter_idx for s in library.summaries(book.id)] == [0, 1, 2, None]

    other = library.resolve(str(write_book(tmp_path / "other.md", chapters=3, title="Other")), add_paths=True)
    with pytest.raises(LibraryError, match="Read the whole book first"):
        api.summarize_book(library, other.id, engine)


@pytest.mark.parametrize("written", ["", " \n\t "])
def test_an_empty_summary_never_replaces_a_stored_one(library, tmp_path, monkeypatch, written):
    engine = tiny()
    book = read_book(library, tmp_path, chapters=2)
    for idx, text in ((0, "He sets out."), (1, "He arrives."), (None, "A journey.")):
        library.save_summary(book.id, idx, text, str(engine.fingerprint))
    before = [(s.chapter_idx, s.text) for s in library.summaries(book.id)]
    writes(engine, monkeypatch, written)
    with pytest.raises(ModelError, match="empty summary of chapter 1"):
        list(api.summarize_chapter(library, book.id, engine, 0, max_new_tokens=8))
    with pytest.raises(ModelError, match="empty summary of the whole book"):
        list(api.summarize_book(library, book.id, engine, max_new_tokens=8))
    assert [(s.chapter_idx, s.text) for s in library.summaries(book.id)] == before


def test_an_empty_chapter_summary_made_for_the_whole_book_is_not_stored(library, tmp_path, monkeypatch):
    """The whole-book summary goes on without it ("(no summary)"); a summary made under another
    model stays, and the chapter is summarised again next time."""
    engine = tiny()
    book = read_book(library, tmp_path, chapters=2)
    library.save_summary(book.id, 0, "Made by another model.", "another fingerprint")
    writes(engine, monkeypatch, " ", whole_book="A journey.")
    assert "".join(api.summarize_book(library, book.id, engine, max_new_tokens=8)) == "A journey."
    assert [(s.chapter_idx, s.text) for s in library.summaries(book.id)] == [(0, "Made by another model."),
                                                                               (None, "A journey.")]


# -- export ----------------------------------------------------------------------------------------


def test_export_markdown(library, tmp_path):
    engine = tiny()
    book = read_book(library, tmp_path, chapters=2)
    fingerprint = str(engine.fingerprint)
    library.save_summary(book.id, None, "A journey of counting.", fingerprint)
    library.save_summary(book.id, 1, "He reaches the tower.", fingerprint)
    library.save_summary(book.id, 0, "He sets out.", fingerprint)
    library.add_message(book.id, "user", "Why count?", 0)
    library.add_message(book.id, "assistant", "To remember.", 0)
    notes = api.export_markdown(library, book.id)
    assert notes.startswith(f"# {book.title}\n")
    order = ["## Summary of the whole book", "A journey of counting.", "## Chapter summaries",
             "### Chapter 1: Stage 1", "He sets out.", "### Chapter 2: Stage 2", "He reaches the tower.",
             "## Conversation", "**You** (as of Chapter 1: Stage 1):", "Why count?", "**Infinibook**:", "To remember."]
    positions = [notes.index(item) for item in order]
    assert positions == sorted(positions)


def test_export_quotes_notes_so_they_cannot_change_the_document(library, tmp_path):
    engine = tiny()
    book = read_book(library, tmp_path, chapters=2)
    library.save_summary(book.id, 0, "## Main events\nThe traveller walks.\n\n# The end", str(engine.fingerprint))
    library.add_message(book.id, "user", "    indented code? and\n---", 0)
    library.add_message(book.id, "assistant", "Answer:\n=====", 0)
    notes = api.export_markdown(library, book.id)
    headings = [line for line in notes.splitlines() if line.lstrip().startswith("#")]
    assert headings == [f"# {book.title}", "## Chapter summaries", "### Chapter 1: Stage 1", "## Conversation"]
    quoted = ["> \\## Main events\n> The traveller walks.\n>\n> \\# The end",  # read as written, in a quote
              ">     indented code? and\n> \\---", "> Answer:\n> \\====="]
    assert all(f"\n\n{text}\n\n" in notes + "\n" for text in quoted), notes


# -- answer length ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tokens", [0, -3])
def test_an_answer_length_below_one_token_is_refused_before_anything_is_stored(library, tmp_path, tokens):
    engine = tiny()
    book = read_book(library, tmp_path, chapters=2)
    library.save_summary(book.id, 0, "A good summary.", str(engine.fingerprint))
    with pytest.raises(LibraryError, match="at least 1 token"):
        api.ask(library, book.id, engine, "Who?", max_new_tokens=tokens)
    with pytest.raises(LibraryError, match="at least 1 token"):
        api.summarize_chapter(library, book.id, engine, 0, max_new_tokens=tokens)
    for options in ({"max_new_tokens": tokens}, {"chapter_max_new_tokens": tokens}):
        with pytest.raises(LibraryError, match="at least 1 token"):
            api.summarize_book(library, book.id, engine, **options)
    assert library.messages(book.id) == []
    assert [(s.chapter_idx, s.text) for s in library.summaries(book.id)] == [(0, "A good summary.")]


def test_a_question_with_undecodable_bytes_is_one_sentence_and_stores_nothing(library, tmp_path):
    book = read_book(library, tmp_path, chapters=2)
    question = b"Who is \xff here?".decode("utf-8", "surrogateescape")  # as Python reads such a terminal
    with pytest.raises(LibraryError, match="not UTF-8 text"):
        api.ask(library, book.id, tiny(), question, max_new_tokens=2)
    assert library.messages(book.id) == []

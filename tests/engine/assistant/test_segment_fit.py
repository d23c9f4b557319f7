"""Prompts fit their segment: what the model should see in local attention is not pushed into
the compressive memory by the prompt's own padding (chat history, a split inside a character)."""

from __future__ import annotations

import pytest

from engine import api
from engine.assistant import plan_chapter_summary
from engine.errors import LibraryError
from engine.reading import chapter_ids
from tests.engine.reading.helpers import tiny, write_book

# Natsume Soseki, "I Am a Cat" (public domain): most characters take several byte-level tokens.
NEKO = ("吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"
        "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。")


@pytest.fixture
def japanese_book(library, tmp_path):
    chapters = "\n".join(f"# 第{i + 1}章\n\n{NEKO * 30}\n" for i in range(2))
    path = tmp_path / "neko.md"
    path.write_text(f"吾輩は猫である\n\n{chapters}", encoding="utf-8")
    return library.resolve(str(path), add_paths=True)


@pytest.mark.parametrize("max_new_tokens", range(8, 40, 3))
def test_a_japanese_chapter_summary_prompt_fits_the_segment_with_its_answer(library, japanese_book, max_new_tokens):
    engine = tiny(256)
    plan = plan_chapter_summary(library, japanese_book.id, engine, 0, max_new_tokens=max_new_tokens)
    ids = chapter_ids(engine, library.chapters(japanese_book.id)[0])
    assert plan.memory_ids and plan.window_ids
    assert plan.memory_ids + plan.window_ids == ids  # still every token exactly once
    assert len(plan.prompt_ids) + max_new_tokens <= engine.segment
    window = engine.tokenizer.decode(plan.window_ids)
    assert not window.startswith("\ufffd")  # the window begins on a whole character
    assert window.strip() in engine.tokenizer.decode(plan.prompt_ids)


def test_chat_history_never_pushes_a_fitting_question_out_of_the_segment(library, tmp_path):
    engine = tiny(512)
    book = library.resolve(str(write_book(tmp_path / "book.md", chapters=2)), add_paths=True)
    api.ingest(library, book.id, engine)
    for turn in range(3):
        library.add_message(book.id, "user", f"Question {turn}: which of the bridges did he cross first, and why?", 1)
        library.add_message(book.id, "assistant", " ".join(["He crossed the old stone bridge by the mill."] * 6), 1)
    question = "What does this passage mean? " + " ".join(["The traveller passed the tower and wrote it down."] * 24)
    alone = api.plan_question(library, book.id, engine, question, as_of=1, max_new_tokens=32)
    without_history = len(engine.chat_prompt([alone.messages[0], alone.messages[-1]]))
    assert without_history + 32 + 140 <= engine.segment  # the question fits, with room for a turn or two

    plan = api.plan_question(library, book.id, engine, question, as_of=1, max_new_tokens=32)
    assert len(plan.prompt_ids) + 32 <= engine.segment
    assert len(plan.messages) > 2  # history still used as far as it fits
    assert plan.messages[-1] == {"role": "user", "content": question}


@pytest.mark.parametrize("max_new_tokens", [60, 80, 100, 120])
def test_every_prompt_of_a_hierarchical_book_summary_fits_the_segment(library, tmp_path, monkeypatch, max_new_tokens):
    """Seven summaries of which three fit one prompt: groups of 3, 3 and 1 must not end as 3 and 4
    (a lone last summary joined to a full group), and a group's longer heading counts too."""
    engine = tiny(512)
    book = library.resolve(str(write_book(tmp_path / "book.md", chapters=7)), add_paths=True)
    api.ingest(library, book.id, engine)
    text = " ".join(["The traveller walked to the old mill by the river and counted the stones."] * 6)
    for chapter in library.chapters(book.id):
        library.save_summary(book.id, chapter.idx, text, str(engine.fingerprint))
    prompts = []
    word = engine.tokenizer.encode(" stones", add_special_tokens=False)

    def longest_answer(ids, state, *, max_new_tokens, **options):  # every group summary as long as allowed
        prompts.append(ids)
        return iter((word * max_new_tokens)[:max_new_tokens])

    monkeypatch.setattr(engine, "generate", longest_answer)
    "".join(api.summarize_book(library, book.id, engine, max_new_tokens=max_new_tokens))
    assert len(prompts) > 2  # groups first, then the whole book
    assert [len(ids) + max_new_tokens <= engine.segment for ids in prompts] == [True] * len(prompts)


def test_a_question_is_refused_exactly_when_local_attention_could_not_see_all_of_it(library, tmp_path):
    """The prompt starts a new segment and its full segments go to the memory: a question is
    taken as long as the prompt made of it and the instructions fits the segment, and refused,
    with its limit, from the first token more; nothing is stored for it."""
    engine = tiny(256)
    book = library.resolve(str(write_book(tmp_path / "book.md", chapters=2)), add_paths=True)
    api.ingest(library, book.id, engine)
    words = "why did the traveller cross the old bridge at night and not in the morning".split()
    system = api.plan_question(library, book.id, engine, "Who?", as_of=1).messages[0]
    verdicts, messages = {}, []
    for n in range(150, 240):
        question = " ".join(words[i % len(words)] for i in range(n)) + "?"
        fits = len(engine.chat_prompt([system, {"role": "user", "content": question}])) <= engine.segment
        try:
            plan = api.plan_question(library, book.id, engine, question, as_of=1, max_new_tokens=32)
        except LibraryError as error:
            verdicts[n] = (fits, False)
            messages.append(str(error))
        else:
            verdicts[n] = (fits, True)
            assert len(plan.prompt_ids) <= engine.segment and plan.messages[-1]["content"] == question
    assert {fits for fits, _ in verdicts.values()} == {True, False}  # the range crosses the limit
    assert all(fits == taken for fits, taken in verdicts.values()), verdicts
    room = engine.segment - len(engine.chat_prompt([system, {"role": "user", "content": ""}]))
    message = messages[0]
    assert "\n" not in message and message.endswith(".") and f"at most {room} fit" in message
    assert "characters" in message
    with pytest.raises(LibraryError, match="too long"):
        api.ask(library, book.id, engine, " ".join(words * 20))
    assert library.messages(book.id) == []


def test_chat_history_never_pushes_a_question_that_fits_without_its_answer_out_of_the_segment(library, tmp_path):
    engine = tiny(512)
    book = library.resolve(str(write_book(tmp_path / "book.md", chapters=2)), add_paths=True)
    api.ingest(library, book.id, engine)
    library.add_message(book.id, "user", "Which of the bridges did he cross first?", 1)
    library.add_message(book.id, "assistant", "He crossed the old stone bridge by the mill.", 1)
    question = "What does this passage mean? " + " ".join(["The traveller passed the tower and wrote it down."] * 38)
    plan = api.plan_question(library, book.id, engine, question, as_of=1, max_new_tokens=200)
    bare = len(engine.chat_prompt([plan.messages[0], plan.messages[-1]]))
    assert bare <= engine.segment < bare + 200  # the question fits, its answer does not
    assert len(plan.prompt_ids) <= engine.segment
    assert plan.messages[-1] == {"role": "user", "content": question}

"""The reading assistant: questions as of a chapter, chapter and book summaries, notes export."""

from .ask import NO_ANSWER, AskPlan, ask, choose_chapter, plan_question
from .decoding import TextDecoder, decode_stream
from .export import export_markdown
from .summaries import plan_chapter_summary, summarize_book, summarize_chapter

__all__ = ["NO_ANSWER", "AskPlan", "TextDecoder", "ask", "choose_chapter", "decode_stream", "export_markdown",
           "plan_chapter_summary", "plan_question", "summarize_book", "summarize_chapter"]

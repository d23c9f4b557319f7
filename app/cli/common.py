"""Options and output helpers every subcommand shares."""

import argparse
import os
import re
import sys

PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def add_common_options(parser: argparse.ArgumentParser, *, model: bool = False, dtype: bool = True,
                       adapter: bool = True, library: bool = True) -> None:
    """Options every command shares; `model` adds the model choice for commands that run one
    (and, unless `dtype` or `adapter` is false, the precision of its weights and its adapter),
    `library` the library's folder: a command that would ignore an option does not offer it."""
    if library:
        parser.add_argument("--data-dir", default=None,
                            help="library directory (default: $INFINIBOOK_DATA_DIR or the user data dir)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    if model:
        parser.add_argument("--model", default=None, help="local HF directory or GGUF file (default: embedded SmolLM2-135M-Instruct)")
        if adapter:
            parser.add_argument("--adapter", default=None,
                                help="Infini adapter .safetensors (default: the shipped one; none: untrained gates)")
        parser.add_argument("--device", default="auto", type=device_name, help="auto, cpu or cuda (cuda:N: one GPU)")
        parser.add_argument("--allow-download", action="store_true",
                            help="let --model name a Hugging Face hub id and download it (needs a network)")
        if dtype:
            parser.add_argument("--dtype", default="auto", choices=PRECISIONS,
                                help="the weights' precision (auto: bfloat16 on CUDA GPUs from Ampere on, else "
                                     "float32; bfloat16 is much faster on CPUs with AMX); the memory itself stays float32")


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def device_name(text: str) -> str:
    """An argparse type for --device: a misspelt device would otherwise reach torch after the
    command started (a traceback), so it is refused with the usage line."""
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"'{text}' is not a device; use auto, cpu or cuda (cuda:N for one GPU)")
    return text


def positive_int(text: str) -> int:
    """An argparse type for counts and sizes (tokens, repeats, batch, steps...): 0 or less would
    fail deep inside a run, or store an empty answer, so it is refused with the usage line."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too small; give a whole number of 1 or more")
    return value


def positive_ints(text: str) -> tuple[int, ...]:
    """A comma-separated list of `positive_int`s, at least one (e.g. 8192,32768)."""
    values = tuple(positive_int(part.strip()) for part in text.split(",") if part.strip())
    if not values:
        raise argparse.ArgumentTypeError("the list is empty; give one or more numbers separated by commas")
    return values


def fail(message: str, code: int = 2) -> int:
    print(f"infinibook: {message}", file=sys.stderr)
    return code


def silence_stdout() -> None:
    """After a BrokenPipeError (the reader of `infinibook ... | head` has gone): point stdout at
    the null device, so that the interpreter's final flush does not fail with a traceback too."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)

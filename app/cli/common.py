"""Options and output helpers every subcommand shares."""

import argparse
import sys

PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def add_common_options(parser: argparse.ArgumentParser, *, model: bool = False, dtype: bool = True) -> None:
    """Options every command shares; `model` adds the model choice for commands that run one
    (and, unless `dtype` is false, the precision of its weights)."""
    parser.add_argument("--data-dir", default=None, help="library directory (default: $INFINIBOOK_DATA_DIR or the user data dir)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    if model:
        parser.add_argument("--model", default=None, help="local HF directory or GGUF file (default: embedded SmolLM2-135M-Instruct)")
        parser.add_argument("--adapter", default=None, help="Infini adapter .safetensors (default: the shipped one; none: untrained gates)")
        parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
        parser.add_argument("--allow-download", action="store_true",
                            help="let --model name a Hugging Face hub id and download it (needs a network)")
        if dtype:
            parser.add_argument("--dtype", default="auto", choices=PRECISIONS,
                                help="the weights' precision (auto: bfloat16 on CUDA, float32 on CPU; bfloat16 "
                                     "is much faster on CPUs with AMX); the memory itself stays float32")


def fail(message: str, code: int = 2) -> int:
    print(f"infinibook: {message}", file=sys.stderr)
    return code

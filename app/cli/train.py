"""`infinibook train`: train the Infini-attention gates (and LoRA) of a base model.

Multi-GPU: `accelerate launch -m app.cli train ...` (each process draws its own batches; the
trainable gradients are averaged across processes). CPU and a single GPU need nothing special.
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

from engine.errors import InfinibookError

from .common import add_common_options, positive_int, positive_ints


def _ints(text: str) -> tuple[int, ...]:
    """Comma-separated positive numbers; empty means none."""
    return positive_ints(text) if text.strip() else ()


def _layers(text: str) -> tuple[int, ...]:
    """An argparse type for --memory-layers (10-29 or 4,8,12): a typo is one usage line before
    the model loads, not a traceback."""
    layers: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"'{part.strip()}' is not a layer number or range; write e.g. 10-29 or 4,8,12") from None
        if last < first:
            raise argparse.ArgumentTypeError(f"{part.strip()} is an empty range; write the lower layer first")
        layers += range(first, last + 1)
    return tuple(layers)


def _out_folder(text: str) -> str:
    """An argparse type for --out: an existing file there would fail only once the model has loaded."""
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"'{text}' is a file, not a folder; choose a folder for the run")
    return text


def _tasks(text: str) -> dict[str, float]:
    tasks = {}
    for item in text.split(","):
        name, _, weight = item.partition("=")
        tasks[name.strip()] = float(weight or 1)
    unknown = set(tasks) - {"passkey", "facts", "text"}
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown tasks {sorted(unknown)}; use passkey, facts, text")
    return tasks


def _share(text: str) -> float:
    share = float(text)
    if not 0.0 <= share <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return share


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None


def _weight(text: str) -> float:
    """A loss weight: 0 or less would silence or invert the answer's end."""
    weight = _number(text)
    if not (weight > 0.0 and math.isfinite(weight)):
        raise argparse.ArgumentTypeError(f"{text} is not a positive weight; give a number above 0 (1 = no extra weight)")
    return weight


def _dilution(text: str) -> float:
    """Below 1 would make the filler before the key weigh less than was written."""
    factor = _number(text)
    if not (factor >= 1.0 and math.isfinite(factor)):
        raise argparse.ArgumentTypeError(f"{text} is not a dilution; give a factor of 1 or more (1 = none)")
    return factor


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train", help="train the Infini-attention memory (gates + LoRA) of a base model",
        description="Back-propagates through the compressive memory across many segments on synthetic recall "
                    "tasks and offline public-domain text; writes checkpoint.pt (resumable), log.jsonl and "
                    "adapter.safetensors into --out.",
    )
    # training has --precision, and starts from untrained gates or --init-adapter
    add_common_options(parser, model=True, dtype=False, adapter=False, library=False)
    parser.add_argument("--out", required=True, type=_out_folder, help="output folder (checkpoints, log, adapter)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--tiny", action="store_true", help="a tiny random Llama (smoke tests)")
    parser.add_argument("--steps", type=positive_int, default=300)
    parser.add_argument("--batch", type=positive_int, default=4)
    parser.add_argument("--segment", type=positive_int, default=128, help="segment length in tokens")
    parser.add_argument("--segment-choices", type=_ints, default=(), help="extra segment lengths drawn at random")
    parser.add_argument("--curriculum", type=positive_ints, default=(2, 3, 4, 6, 8, 12, 16),
                        help="stages: the largest number of segments per example")
    parser.add_argument("--min-segments", type=positive_int, default=2)
    parser.add_argument("--advance-loss", type=float, default=0.3, help="passkey loss that unlocks the next stage")
    parser.add_argument("--stage-max-steps", type=positive_int, default=60)
    parser.add_argument("--hardest-share", type=_share, default=0.6,
                        help="share of steps at the longest unlocked count; the rest uniform from --min-segments up "
                             "(lower mixes lengths more evenly)")
    parser.add_argument("--length-draw", choices=("uniform", "log", "strata"), default="uniform",
                        help="how the other steps draw their number of segments: uniform in the count, "
                             "log-uniform (as many short examples as long ones), or strata (log-uniform, each of the "
                             "--accumulate micro-batches of a step from its own length range: short and long in every "
                             "step)")
    parser.add_argument("--accumulate", type=positive_int, default=1,
                        help="micro-batches per optimizer step, each drawing its own task and length")
    parser.add_argument("--hard-keys", type=_share, default=0.0,
                        help="share of pass keys spelt with at most 3 different digits (e.g. 25455), the ones "
                             "recall confuses most")
    parser.add_argument("--stop-weight", type=_weight, default=1.0,
                        help="loss weight of an answer's last token and its full stop, where the model decides the "
                             "answer has ended (1 = every answer token alike)")
    parser.add_argument("--tasks", type=_tasks, default={"passkey": 0.6, "facts": 0.2, "text": 0.2},
                        help="task mix, e.g. passkey=0.6,facts=0.2,text=0.2")
    parser.add_argument("--gate-init", type=float, default=0.0, help="initial gate logit (0 = sigmoid 0.5)")
    parser.add_argument("--init-adapter", default=None,
                        help="start from this adapter's gates and LoRA (its rank and targets) instead of --gate-init")
    parser.add_argument("--widen-lora", type=positive_int, default=None, metavar="RANK",
                        help="with --init-adapter: grow its LoRA to this rank (alpha grown alike); the adapter's "
                             "components carry on as they were and the new ones start at zero")
    parser.add_argument("--gate-lr", type=float, default=1e-1)
    parser.add_argument("--lora-lr", type=float, default=2e-3)
    parser.add_argument("--lora-rank", type=int, default=8, help="0 = gates only")
    parser.add_argument("--lora-alpha", type=positive_int, default=16,
                        help="LoRA scaling numerator: its addition is scaled by alpha / rank")
    parser.add_argument("--lora-targets", default="q_proj,k_proj,v_proj",
                        help="comma-separated: attention (q_proj, k_proj, v_proj, o_proj) and MLP (gate_proj, "
                             "up_proj, down_proj) projections; MLP targets give the memory layers' MLPs copies of "
                             "their own")
    parser.add_argument("--lora-memory-only", action="store_true",
                        help="LoRA changes only the memory's queries, keys and values; local attention stays the base "
                             "model's (memory off = the base model exactly)")
    parser.add_argument("--memory-layers", type=_layers, default=None,
                        help="layers whose memory trains, e.g. 10-29 or 4,8,12 (default all); the rest stay local-only")
    parser.add_argument("--rule", default="delta", choices=("delta", "linear"))
    parser.add_argument("--grad-segments", type=int, default=0,
                        help="back-propagate in full through only the last N segments and those holding a key or fact; "
                             "the filler between is written with a straight-through gradient (long examples, cheaply)")
    parser.add_argument("--dilute", type=_dilution, default=1.0, metavar="MAX",
                        help="pass-key examples: weigh the memory before the key 1 to MAX times (log-uniform), as if "
                             "that much more filler had been written, so short examples teach long-context recall")
    parser.add_argument("--dilute-after", type=_dilution, default=1.0, metavar="MAX",
                        help="pass-key examples: weigh each filler segment written after the key 1 to MAX times "
                             "(log-uniform), as if a key early in a much longer text were asked for")
    parser.add_argument("--no-checkpointing", action="store_true", help="keep all activations (faster, more memory)")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                        help="bf16 autocast for the base model (auto: on CUDA GPUs from Ampere on; the memory stays float32)")
    parser.add_argument("--save-every", type=positive_int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", default=None, help="also copy the final adapter here (e.g. resources/adapters/...)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(handler=run)


def _export(adapter: Path, target: Path) -> None:
    """Copy the trained adapter to `target` (into it, when a folder); a failure is one sentence
    that says where the adapter is, not a traceback at the end of a long run."""
    import shutil

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(adapter, target)
    except OSError as error:
        raise InfinibookError(f"Cannot copy the adapter to {target} ({error.strerror or error}); "
                              f"it is in {adapter}.") from error


def run(args: argparse.Namespace) -> int:
    from engine.infini import load_engine
    from engine.training import TrainConfig, check_out_dir, train

    if args.widen_lora and not args.init_adapter:
        raise InfinibookError("--widen-lora grows the LoRA of the adapter given with --init-adapter; give one.")
    if os.environ.get("RANK", "0") == "0":  # before the model loads; under accelerate, by the main process
        check_out_dir(args.out, args.resume)

    config = TrainConfig(
        steps=args.steps, batch=args.batch, segment=args.segment, segment_choices=args.segment_choices,
        curriculum=args.curriculum, min_segments=args.min_segments, max_segments=max(args.curriculum),
        advance_loss=args.advance_loss, stage_max_steps=args.stage_max_steps, hardest_share=args.hardest_share,
        length_draw=args.length_draw, accumulate=args.accumulate,
        tasks=args.tasks, hard_keys=args.hard_keys, stop_weight=args.stop_weight, dilute=args.dilute, dilute_after=args.dilute_after,
        gate_init=args.gate_init, gate_lr=args.gate_lr, lora_lr=args.lora_lr, lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha,
        lora_targets=tuple(t for t in args.lora_targets.split(",") if t), lora_memory_only=args.lora_memory_only,
        rule=args.rule, memory_layers=args.memory_layers, init_adapter=args.init_adapter,
        widen_lora=args.widen_lora or 0,
        checkpointing=not args.no_checkpointing, grad_segments=args.grad_segments, precision=args.precision,
        save_every=args.save_every, seed=args.seed,
    )
    if args.tiny:
        from engine.infini.tiny import tiny_engine

        model = tiny_engine(segment=args.segment, rule=args.rule)
    else:
        model = load_engine(args.model, adapter=None, device=args.device, segment=args.segment, rule=args.rule)
    # notes such as "resumed from ..." go to stderr: with --json, stdout holds the summary only
    result = train(model, config, args.out, resume=args.resume, progress=not args.no_progress,
                   log=lambda line: print(line, file=sys.stderr))
    adapter = Path(args.out) / "adapter.safetensors"
    if args.export:
        _export(adapter, Path(args.export))
    summary = {"adapter": str(adapter), "steps": result["steps"], "seconds": round(result["seconds"], 1),
               "tokens": result["tokens"], "gate_max": round(result["gates"]["max"], 4),
               "ema_loss": {k: round(v, 4) for k, v in result["ema"].items()}}
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0

"""Training the Infini parameters: gates (own learning rate, no weight decay) and peft LoRA.

Designed around the known failure modes of public reproductions:
- gates get their own, much higher learning rate and no weight decay, and start where they can
  move (sigmoid(gate_init) well away from 0);
- the memory is never detached: the loss back-propagates through every write, across all the
  segments of an example, with gradient checkpointing per segment to bound activation memory;
- the memory is built from keys before RoPE (the engine's attention does this);
- non-finite losses or gradients skip the step instead of poisoning the weights;
- a curriculum grows the number of segments (compressions) once recall works at the current one.

Multi-GPU: run `accelerate launch -m app.cli train ...`; every process draws its own batches
and the trainable gradients are averaged across processes before each step (no DDP wrapper is
needed, since only the gates and LoRA train).
"""

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from engine.errors import TrainingError
from engine.infini.adapter import add_lora, base_tensors, load_adapter, save_adapter
from engine.infini.attention import GATE_LOCAL_ONLY
from engine.infini.loading import bf16_native
from engine.infini.model import InfiniModel
from engine.paths import replace_durably, write_text_atomically

from . import data


@dataclass
class TrainConfig:
    steps: int = 300
    batch: int = 4
    segment: int = 128
    segment_choices: tuple[int, ...] = ()  # extra segment lengths drawn at random (longer-segment robustness)
    min_segments: int = 2
    max_segments: int = 16
    curriculum: tuple[int, ...] = (2, 3, 4, 6, 8, 12, 16)  # stages of the largest number of segments
    advance_loss: float = 0.3  # passkey answer loss (nats/token, EMA) that unlocks the next stage
    stage_max_steps: int = 60  # ... or after this many steps at one stage
    hardest_share: float = 0.6  # steps at the longest unlocked count; the rest uniform from min_segments up
    length_draw: str = "uniform"  # the rest: "uniform" in the count, "log" (as many 4-8 as 64-128 segments),
    # or "strata": log-uniform, micro-batch i of `accumulate` from the i-th of as many equal log-width strata
    accumulate: int = 1  # micro-batches per optimizer step, each with its own task and number of segments
    tasks: dict = field(default_factory=lambda: {"passkey": 0.6, "facts": 0.2, "text": 0.2})
    gate_init: float = 0.0
    gate_lr: float = 1e-1
    lora_lr: float = 2e-3
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj")
    lora_memory_only: bool = False  # LoRA on the memory's Q/K/V only; local attention stays the base model's
    memory_layers: tuple[int, ...] | None = None  # layers whose memory trains; the rest stay local-only
    weight_decay: float = 0.0
    extra_trainable: tuple[str, ...] = ()  # base parameter names containing these also train (tiny tests)
    key_digits: int = 5
    hard_keys: float = 0.0  # share of pass keys spelt with at most 3 different digits (data.few_digit_key)
    stop_weight: float = 1.0  # loss weight of an answer's last token and its full stop (data.loss_weights)
    dilute: float = 1.0  # > 1: each pass key's earlier memory weighs 1-dilute times, log-uniform (data.dilution_plan)
    dilute_after: float = 1.0  # > 1: each filler write after the key weighs 1-dilute_after times, log-uniform
    grad_clip: float = 1.0
    warmup: int = 5
    init_adapter: str | None = None  # continue from this adapter's gates and LoRA instead of gate_init
    widen_lora: int = 0  # > 0: init_adapter's LoRA grown to this rank, starting where it ended (adapter.widened)
    checkpointing: bool = True
    grad_segments: int = 0  # > 0: only the last N segments and those holding a key or fact back-propagate in full
    precision: str = "auto"  # bf16 autocast: "auto" on CUDA GPUs with native bf16; "bf16" on the CPU too (~1.3x on AVX512-BF16)
    text: str = "kjv"
    seed: int = 0
    save_every: int = 20
    rule: str = "delta"

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def setup(model: InfiniModel, config: TrainConfig) -> list[torch.nn.Parameter]:
    """Freeze the base, set the gates to `gate_init`, add LoRA; returns the trainable parameters."""
    for p in model.lm.parameters():
        p.requires_grad_(False)
    model.rule = config.rule
    layers = _memory_layers(model, config)
    if config.init_adapter:  # its gates and LoRA (rank, targets, layers) are where training starts
        load_adapter(model, config.init_adapter, merge=False, widen_lora_to=config.widen_lora or None)
    else:
        if config.lora_rank > 0:  # peft freezes everything but LoRA: the gates are unfrozen below
            add_lora(model, rank=config.lora_rank, alpha=config.lora_alpha, targets=config.lora_targets,
                     layers=sorted(layers), memory_only=config.lora_memory_only)
        with torch.no_grad():
            for i, attention in enumerate(model.attention):
                attention.gate.fill_(config.gate_init if i in layers else GATE_LOCAL_ONLY)
    for i, attention in enumerate(model.attention):
        attention.gate.requires_grad_(i in layers)
    return trainable(model, config.extra_trainable)


def _memory_layers(model: InfiniModel, config: TrainConfig) -> set[int]:
    count = len(model.attention)
    if config.memory_layers is None:
        return set(range(count))
    return {i % count for i in config.memory_layers}


def trainable(model: InfiniModel, extra: tuple[str, ...] = ()) -> list[torch.nn.Parameter]:
    gates = [a.gate for a in model.attention if a.gate.requires_grad]
    others = _others(model, extra)
    for p in others:
        p.requires_grad_(True)
    return gates + others


def _others(model: InfiniModel, extra: tuple[str, ...] = ()) -> list[torch.nn.Parameter]:
    return [p for n, p in model.lm.named_parameters()
            if "lora_" in n or (any(e in n for e in extra) and not n.endswith(".gate"))]


def make_optimizer(model: InfiniModel, config: TrainConfig) -> torch.optim.Optimizer:
    gates = [a.gate for a in model.attention if a.gate.requires_grad]
    lora = _others(model, config.extra_trainable)
    groups = [{"params": gates, "lr": config.gate_lr, "weight_decay": 0.0, "name": "gates"}]
    if lora:
        groups.append({"params": lora, "lr": config.lora_lr, "weight_decay": config.weight_decay, "name": "lora"})
    return torch.optim.AdamW(groups, betas=(0.9, 0.99))


def _flatten(memories):
    return [t for pair in memories for t in pair]


def _unflatten(flat):
    return list(zip(flat[0::2], flat[1::2], strict=True))


PRECISIONS = ("auto", "bf16", "fp32")


def mixed_precision(device: torch.device, precision: str = "auto") -> torch.autocast:
    """bf16 autocast for the base model's matmuls; the memory's equations opt out (memory.in_float32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
    bf16 = precision == "bf16" or (precision == "auto" and bf16_native(device))
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def straight_through_write(model: InfiniModel, chunk: torch.Tensor, flat: list[torch.Tensor]) -> list[torch.Tensor]:
    """A filler segment written without a graph: exact memory values, gradient passed unchanged.

    M_s = M_{s-1} + (M_s - M_{s-1}) with the difference detached: the forward pass sees every
    token (the key's share of z is diluted as at inference), the backward pass treats the
    segment as if it had written nothing (exact for the linear rule's memory path; the filler's
    own keys and values get no gradient). It costs one forward pass, with no activations kept.
    """
    with torch.no_grad():
        written = _flatten(model.stream_segment(chunk, _unflatten([t.detach() for t in flat])))
    return [before + (after - before.detach()) for before, after in zip(flat, written, strict=True)]


def diluted(flat: list[torch.Tensor], plan: list[data.Dilution] | None, index: int) -> list[torch.Tensor]:
    """The memories with the rows whose plan dilutes before segment `index` multiplied by their factor."""
    if plan is None:
        return flat
    return _scaled_rows(flat, [row.before if row.before_segment == index else 1.0 for row in plan])


def extended(before: list[torch.Tensor], written: list[torch.Tensor], plan: list[data.Dilution] | None,
             index: int) -> list[torch.Tensor]:
    """The memories after segment `index`'s write, that write weighing `after` times in the rows whose
    plan dilutes from `index` on: before + after * (written - before)."""
    if plan is None:
        return written
    factors = [row.after if index >= row.after_segment else 1.0 for row in plan]
    if all(f == 1.0 for f in factors):
        return written
    return [b + d for b, d in zip(before, _scaled_rows([w - b for w, b in zip(written, before, strict=True)], factors),
                                  strict=True)]


def _scaled_rows(flat: list[torch.Tensor], factors: list[float]) -> list[torch.Tensor]:
    if all(f == 1.0 for f in factors):
        return flat
    scale = torch.tensor(factors, device=flat[0].device)
    return [t * scale.view(-1, *([1] * (t.dim() - 1))) for t in flat]  # the memories are float32, as factors


def sequence_loss(model: InfiniModel, ids: torch.Tensor, labels: torch.Tensor, segment: int, *,
                  checkpointing: bool = True, exact: set[int] | None = None,
                  weights: torch.Tensor | None = None,
                  dilution: list[data.Dilution] | None = None) -> tuple[torch.Tensor, float]:
    """Sum of cross-entropy over labelled tokens and their count, back-propagating through memory.

    With `weights` (one per position, as labels), each token's loss and its share of the count
    are weighted.

    One differentiable pass over all segments: segment s reads the memory written by segments
    < s, and nothing is detached, so the answer's gradient reaches the key's segment. With
    `exact` given, only those segments (and any with labels) back-propagate in full; the others
    are `straight_through_write`s. `dilution` (data.dilution_plan) multiplies a row's memory
    before its key's segment and the writes after it.
    """
    batch, total = ids.shape
    memories = model.empty_memories(batch)
    flat = _flatten(memories)
    loss_sum = torch.zeros((), device=ids.device)
    count = 0.0
    if weights is None:
        weights = torch.ones(labels.shape, device=ids.device)
    starts = list(range(0, total, segment))
    for index, start in enumerate(starts):
        chunk, chunk_labels = ids[:, start : start + segment], labels[:, start : start + segment]
        chunk_weights = weights[:, start : start + segment]
        need_loss = bool((chunk_labels != -100).any())
        write = index < len(starts) - 1
        if not need_loss and not write:
            continue
        flat = diluted(flat, dilution, index)
        if exact is not None and index not in exact and not need_loss:
            flat = extended(flat, straight_through_write(model, chunk, flat), dilution, index)
            continue

        def step(chunk, chunk_labels, chunk_weights, *flat, need_loss=need_loss, write=write):
            memories = _unflatten(list(flat))
            if not need_loss:  # a segment that is only read into memory
                return (torch.zeros((), device=chunk.device), *_flatten(model.stream_segment(chunk, memories)))
            hidden, caches = model.segment_forward(chunk, memories)
            mask = chunk_labels != -100
            logits = model.logits(hidden[mask]).float()
            token_losses = F.cross_entropy(logits, chunk_labels[mask], reduction="none")
            outputs = [(token_losses * chunk_weights[mask]).sum()]
            if write:
                outputs += _flatten(model.write(memories, caches))
            return tuple(outputs)

        if checkpointing and torch.is_grad_enabled():
            outputs = checkpoint(step, chunk, chunk_labels, chunk_weights, *flat, use_reentrant=False)
        else:
            outputs = step(chunk, chunk_labels, chunk_weights, *flat)
        loss_sum = loss_sum + outputs[0]
        count += float(chunk_weights[chunk_labels != -100].sum())
        if write:
            flat = extended(flat, list(outputs[1:]), dilution, index)
    return loss_sum, count


def sampler_seed(seed: int, process: int = 0, step: int = 0) -> str:
    """Training draws from its own random stream: `eval passkey --seed N` uses random.Random(N), and
    the same stream here put evaluation keys into training. One stream per process, too."""
    return f"train-{seed}-{process}-{step}"


class TaskSampler:
    """Draws batches of the mixed tasks at the curriculum's current number of segments."""

    def __init__(self, tokenizer, config: TrainConfig, text_ids: list[int] | None, seed: int):
        self.tokenizer, self.config, self.text_ids = tokenizer, config, text_ids
        self.rng = random.Random(seed)

    def draw(self, max_segments: int, part: int = 0) -> tuple[str, int, int, list[data.Example]]:
        """`part`: which micro-batch of the step this is (its stratum under length_draw="strata")."""
        c, rng = self.config, self.rng
        names = [t for t, w in c.tasks.items() if w > 0 and (t == "passkey" or self.text_ids)]
        task = rng.choices(names, weights=[c.tasks[t] for t in names])[0]
        segment = rng.choice((c.segment, *c.segment_choices))
        low = min(c.min_segments, max_segments)
        # the hardest count unlocked so far in `hardest_share` of draws, else any from min_segments up
        # (short ones are not forgotten; a low share trains every length evenly)
        # (under strata, only the longest stratum's micro-batch jumps to the hardest count)
        hardest = rng.random() < c.hardest_share and (c.length_draw != "strata" or part == c.accumulate - 1)
        n = max_segments if hardest else self._count(low, max_segments, part)
        total = n * segment
        examples = []
        for _ in range(c.batch):
            if task == "passkey":
                key = data.few_digit_key(rng, c.key_digits) if c.hard_keys and rng.random() < c.hard_keys else None
                example = data.passkey_example(self.tokenizer, total, rng.random(), rng, last_segment=segment,
                                               digits=c.key_digits, key=key)
                if c.dilute > 1:  # drawn only then, so runs without it draw what they always did
                    example = replace(example, dilution=math.exp(rng.uniform(0.0, math.log(c.dilute))))
                if c.dilute_after > 1:
                    example = replace(example, dilution_after=math.exp(rng.uniform(0.0, math.log(c.dilute_after))))
                examples.append(example)
            elif task == "facts":
                examples.append(data.facts_example(self.tokenizer, self.text_ids, total, rng, last_segment=segment,
                                                   n_facts=rng.randint(1, 3)))
            else:
                examples.append(data.text_example(self.text_ids, total, rng, last_segment=segment))
        return task, n, segment, examples

    def _count(self, low: int, high: int, part: int = 0) -> int:
        """Uniform in the count spends most steps on long examples (4-128: half above 66); log-uniform
        trains 8K as often as 128K, so the key's end is learnt at every length evaluated. Strata put
        short and long examples into every step: trained one after the other, where the answer stops
        followed the lengths seen last (a digit short at 128K after short ones, one too many at 32K
        after long ones)."""
        draw = self.config.length_draw
        if draw == "uniform":
            return self.rng.randint(low, high)
        lo, hi = math.log(low), math.log(high + 1)
        if draw == "strata":
            width = (hi - lo) / self.config.accumulate
            lo, hi = lo + width * part, lo + width * (part + 1)
        return max(low, min(high, int(math.exp(self.rng.uniform(lo, hi)))))


@dataclass
class TrainState:
    step: int = 0
    stage: int = 0
    stage_steps: int = 0
    ema: dict = field(default_factory=dict)
    seconds: float = 0.0
    tokens: int = 0
    history: list = field(default_factory=list)


def _lr_factor(step: int, config: TrainConfig) -> float:
    if step < config.warmup:
        return (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def save_checkpoint(path: Path, model: InfiniModel, optimizer, state: TrainState, config: TrainConfig, rng) -> None:
    params = {f"gate.{i}": a.gate.detach().cpu() for i, a in enumerate(model.attention)}
    params |= {n: p.detach().cpu() for n, p in _trained_weights(model).items()}
    tmp = path.with_suffix(".tmp")
    torch.save({"params": params, "optimizer": optimizer.state_dict(), "state": asdict(state),
                "config": config.to_json(), "rng": rng.getstate(), "torch_rng": torch.get_rng_state()}, tmp)
    replace_durably(tmp, path)


def _trained_weights(model: InfiniModel) -> dict[str, torch.nn.Parameter]:
    """Every trained parameter but the gates: LoRA, and base weights trained as extras."""
    return {n: p for n, p in model.lm.named_parameters() if p.requires_grad and not n.endswith(".gate")}


def trained_extras(model: InfiniModel) -> dict[str, torch.Tensor]:
    """Base weights trained beside the gates and LoRA (`extra_trainable`), for the adapter file."""
    return base_tensors({n: p for n, p in _trained_weights(model).items() if "lora_" not in n})


def load_checkpoint(path: Path, model: InfiniModel, optimizer, rng) -> TrainState:
    saved = torch.load(path, map_location="cpu", weights_only=True)  # no pickled code: tensors and plain data only
    named = dict(model.lm.named_parameters())
    with torch.no_grad():
        for name, value in saved["params"].items():
            if name.startswith("gate."):
                model.attention[int(name.split(".")[1])].gate.copy_(value)
            else:
                named[name].copy_(value)
    optimizer.load_state_dict(saved["optimizer"])
    rng.setstate(saved["rng"])
    torch.set_rng_state(saved["torch_rng"])
    return TrainState(**saved["state"])


def gate_summary(model: InfiniModel) -> dict:
    gates = torch.stack([torch.sigmoid(a.gate.detach().float().cpu()) for a in model.attention])
    return {"max": float(gates.max()), "mean": float(gates.mean()),
            "per_layer_max": [round(float(g), 3) for g in gates.max(dim=1).values]}


def check_out_dir(out_dir: str | Path, resume: bool) -> None:
    """Before the model loads: --resume needs a checkpoint, and a fresh run must not overwrite
    another run's checkpoint or mix its steps into that run's log."""
    out_dir = Path(out_dir)
    checkpoint = out_dir / "checkpoint.pt"
    if resume and not checkpoint.exists():
        raise TrainingError(f"There is no checkpoint to resume in {out_dir}; run without --resume to start "
                            f"a new run there.")
    if not resume and (checkpoint.exists() or (out_dir / "log.jsonl").exists()):
        raise TrainingError(f"{out_dir} already holds a training run; pass --resume to continue it, or choose "
                            f"another folder.")


def train(model: InfiniModel, config: TrainConfig, out_dir: str | Path, *, resume: bool = False,
          accelerator=None, progress: bool = True, log=print) -> dict:
    """Train; writes checkpoint.pt (resumable), log.jsonl and adapter.safetensors in out_dir."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    accelerator = accelerator or Accelerator(cpu=model.device.type == "cpu")
    if accelerator.is_main_process:  # the others would find the log the main process just began
        check_out_dir(out_dir, resume)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    params = setup(model, config)
    model.lm.train(False)  # no dropout anywhere; gradients still flow
    optimizer = make_optimizer(model, config)
    text_ids = None
    if any(config.tasks.get(t, 0) > 0 for t in ("facts", "text")):
        from engine.texts import public_domain_text

        text_ids = model.tokenizer.encode(public_domain_text(config.text), add_special_tokens=False)
    sampler = TaskSampler(model.tokenizer, config, text_ids, sampler_seed(config.seed, accelerator.process_index))
    ckpt = out_dir / "checkpoint.pt"
    state = TrainState()
    if resume:
        state = load_checkpoint(ckpt, model, optimizer, sampler.rng)
        if accelerator.process_index:  # the checkpoint holds the main process's stream only
            sampler.rng.seed(sampler_seed(config.seed, accelerator.process_index, state.step))
        log(f"resumed from {ckpt} at step {state.step}")
    stages = [s for s in config.curriculum if s <= config.max_segments] or [config.max_segments]
    bar = tqdm(total=config.steps, initial=state.step, disable=not (progress and accelerator.is_main_process),
               dynamic_ncols=True)
    log_path = out_dir / "log.jsonl"
    if accelerator.is_main_process and resume and state.step:
        # a run stopped between checkpoints logged steps it now repeats: keep the checkpoint's own
        write_text_atomically(log_path, "".join(json.dumps(r) + "\n" for r in state.history))
    log_file = log_path.open("a") if accelerator.is_main_process else None  # one writer under accelerate
    device = model.device
    autocast = mixed_precision(device, config.precision)
    while state.step < config.steps:
        max_segments = stages[min(state.stage, len(stages) - 1)]
        for group in optimizer.param_groups:
            group["lr"] = (config.gate_lr if group["name"] == "gates" else config.lora_lr) * _lr_factor(state.step, config)
        optimizer.zero_grad(set_to_none=True)
        started = time.perf_counter()
        parts, skipped, tokens = [], False, 0
        for part in range(config.accumulate):  # gradients add up over the micro-batches of one step
            # drawn even in a step already lost to a non-finite loss, so later steps (and a resume) draw
            # what an unbroken run would; such a step needs no more forward passes
            task, n, segment, examples = sampler.draw(max_segments, part)
            loss = torch.tensor(math.nan)
            if not skipped:
                ids, labels = (t.to(device) for t in data.collate(examples))
                weights = data.loss_weights(examples, config.stop_weight).to(device)
                exact = data.exact_segments(examples, segment, n, config.grad_segments)
                with autocast:
                    loss_sum, count = sequence_loss(model, ids, labels, segment, checkpointing=config.checkpointing,
                                                    exact=exact, weights=weights,
                                                    dilution=data.dilution_plan(examples, segment))
                loss = loss_sum / max(1, count)
                skipped = not torch.isfinite(loss)
                if not skipped:
                    accelerator.backward(loss / config.accumulate)
                tokens += ids.numel()
            parts.append({"task": task, "segments": n, "segment": segment, "loss": round(float(loss.detach()), 4),
                          "answers": [e.answer for e in examples if e.answer]})
            if any(e.dilution != 1.0 or e.dilution_after != 1.0 for e in examples):  # loss against dilution
                parts[-1]["dilution"] = [[round(e.dilution, 2), round(e.dilution_after, 2)] for e in examples]
        if accelerator.num_processes > 1:  # one process's non-finite loss skips the step on all of them
            flag = torch.tensor([float(skipped)], device=device)  # (or the others would wait in reduce)
            skipped = bool(accelerator.reduce(flag, reduction="sum").item() > 0)
        if not skipped:
            for p in params:
                if p.grad is not None and accelerator.num_processes > 1:
                    p.grad = accelerator.reduce(p.grad, reduction="mean")
            norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            skipped = not torch.isfinite(norm)
            if not skipped:
                optimizer.step()
        elapsed = time.perf_counter() - started
        state.step += 1
        state.stage_steps += 1
        state.seconds += elapsed
        state.tokens += tokens
        for part in parts:
            key = f"{part['task']}@{part['segments']}" if part["task"] == "passkey" else part["task"]
            if math.isfinite(part["loss"]):
                state.ema[key] = part["loss"] if key not in state.ema else 0.9 * state.ema[key] + 0.1 * part["loss"]
        gates = gate_summary(model)
        first = parts[0]
        value = sum(p["loss"] for p in parts) / len(parts)
        record = {"step": state.step, "task": first["task"], "segments": first["segments"], "segment": first["segment"],
                  "loss": round(value, 4), "skipped": skipped, "seconds": round(elapsed, 2),
                  "gate_max": round(gates["max"], 4), "gate_mean": round(gates["mean"], 4),
                  "stage_max_segments": max_segments}
        if first["answers"]:  # the keys and names asked: which ones stay hard
            record["answers"] = first["answers"]
        if len(parts) > 1:  # each micro-batch's own task, length and loss
            record["parts"] = parts
        state.history.append(record)
        if log_file is not None:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
        # curriculum: advance once recall works with the current largest number of segments
        current = state.ema.get(f"passkey@{max_segments}")
        if state.stage < len(stages) - 1 and (
            (current is not None and current < config.advance_loss and state.stage_steps >= 5)
            or state.stage_steps >= config.stage_max_steps
        ):
            state.stage += 1
            state.stage_steps = 0
        bar.update(1)
        bar.set_postfix(task=first["task"], n="+".join(str(p["segments"]) for p in parts), loss=f"{value:.3f}",
                        gate=f"{gates['max']:.2f}", tok_s=f"{tokens / elapsed:.0f}")
        if accelerator.is_main_process and (state.step % config.save_every == 0 or state.step == config.steps):
            save_checkpoint(ckpt, model, optimizer, state, config, sampler.rng)
            info = {"config": config.to_json(), "steps": state.step, "train_seconds": round(state.seconds, 1),
                    "train_tokens": state.tokens, "device": str(device)}
            save_adapter(model, out_dir / "adapter.safetensors", extra=trained_extras(model), info=info)
    bar.close()
    if log_file is not None:
        log_file.close()
    return {"steps": state.step, "seconds": state.seconds, "tokens": state.tokens, "ema": state.ema,
            "gates": gate_summary(model)}

"""A tiny random Llama with the default model's tokenizer: for tests and quick experiments.

Same architecture family and tokenizer as the default model, a few hundred thousand
parameters in the transformer itself, so a whole book streams through it in seconds on a CPU.
"""

import hashlib

import torch

from .attention import GATE_LOCAL_ONLY
from .model import InfiniModel


def tiny_llama(vocab_size: int = 49152, *, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
               seed: int = 0, model_type: str = "llama"):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(
        model_type,
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()


def state_dict_sha256(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def tiny_engine(*, segment: int = 32, rule: str = "delta", gate_init: float = GATE_LOCAL_ONLY, tokenizer=None,
                **model_options) -> InfiniModel:
    """A patched tiny Llama; with tokenizer=None the default model's tokenizer is used."""
    from .loading import default_tokenizer

    tokenizer = tokenizer if tokenizer is not None else default_tokenizer()
    lm = tiny_llama(len(tokenizer), **model_options)
    return InfiniModel(lm, tokenizer, segment=segment, rule=rule, base_sha=state_dict_sha256(lm), gate_init=gate_init)


def randomize_lora(model: InfiniModel, std: float = 0.5) -> InfiniModel:
    """Give every LoRA B a seeded random value: fresh LoRA adds zero, so a test could not see it."""
    with torch.no_grad():
        for name, p in model.lm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, std, generator=torch.Generator().manual_seed(len(name)))
    return model

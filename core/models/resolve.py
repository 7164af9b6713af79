"""Turn a base-model setting ('default', a folder, a hub id) into something transformers can load."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import NotFoundError, SettingsError
from core.models.default import default_model_dir, is_ready

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelRef:
    """A resolved base model: `source` is a local folder path or a hub id; `kind` says which."""

    name: str
    source: str
    kind: str  # "default" | "folder" | "hub"


def resolve_model(name: str, models_dir: Path) -> ModelRef:
    """Resolve a base-model name.

    Raises:
        NotFoundError: the default is not converted yet, or a folder does not hold a model.
        SettingsError: the name is neither a folder nor a hub id.
    """
    if name == "default":
        path = default_model_dir(models_dir)
        if not is_ready(path):
            raise NotFoundError(f"the default base model is not prepared at {path}: run `finmed model pull-default`")
        return ModelRef(name, str(path), "default")
    path = Path(name).expanduser()
    looks_like_path = name.startswith(("/", ".", "~")) or path.exists() or os.sep in name and not HUB_ID.match(name)
    if looks_like_path:
        if not (path / "config.json").is_file():
            raise NotFoundError(f"FINMED_BASE_MODEL={name}: no model folder there (expected {path / 'config.json'})")
        return ModelRef(name, str(path.resolve()), "folder")
    if HUB_ID.match(name):
        return ModelRef(name, name, "hub")
    raise SettingsError(f"FINMED_BASE_MODEL={name!r} is neither 'default', an existing folder nor a hub id (org/name)")


def load_causal_lm(ref: ModelRef, *, dtype: Any = None, device: str = "cpu") -> tuple[Any, Any]:
    """Load (model, tokenizer) for `ref`; hub ids come only from the local cache (HF_HUB_OFFLINE is honoured).

    Raises:
        NotFoundError: a hub id that is not in the local cache.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(ref.source)
        model = AutoModelForCausalLM.from_pretrained(ref.source, dtype=dtype or "float32")
    except OSError as exc:
        raise NotFoundError(f"cannot load model '{ref.name}': {str(exc).splitlines()[0]}") from None
    return model.to(device), tokenizer

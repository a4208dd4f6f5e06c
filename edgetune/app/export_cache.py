"""Re-export an unchanged plan from a cache instead of tracing and lowering it again.

An entry's key is the SHA-256 of everything an artifact is made from:
  - the recipe ("classifier" / "lm") and its plan (every field),
  - the training data file's bytes (labels, token rows and calibration come from it),
  - the formats asked for,
  - the model's files (`model_files`: the checkpoint directory, the GGUF file, the offline package),
  - the toolchain's versions (`TOOLCHAIN`) and edgetune's own source files.
Change any of them and the key changes. An entry is an artifact directory; a hit is copied to
the output (atomically, like every export) after its files pass `load_manifest`'s hash check,
so a damaged entry is dropped and the plan exported afresh. The newest `MAX_ENTRIES` are kept.

The cache lives in ``$EDGETUNE_CACHE_DIR`` or ``~/.cache/edgetune/exports``.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

from edgetune.errors import EdgetuneError
from edgetune.files import replacing_directory

TOOLCHAIN = ("torch", "executorch", "onnx", "onnxscript", "onnxruntime", "coremltools", "transformers",
             "tokenizers", "safetensors", "numpy", "gguf")
CODE_PACKAGES = ("edgetune", "exporters", "device_harness")  # whose sources shape an artifact
MAX_ENTRIES = 8
_CHUNK = 1 << 20


def cache_dir() -> Path:
    env = os.environ.get("EDGETUNE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "edgetune" / "exports"


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks (memory does not grow with the file)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def model_files(model: str) -> list[Path]:
    """The files a plan's ``model`` is read from: every file of a checkpoint directory or of
    the offline package ('minilm' also for 'tiny', whose tokenizer it is), or the GGUF file."""
    from edgetune.models.hf_checkpoint import is_checkpoint_dir

    if model in ("minilm", "tiny"):
        from edgetune.models.minilm import minilm_path

        root = minilm_path()
    elif is_checkpoint_dir(model):
        root = Path(model)
    else:
        from edgetune.app.common import gguf_path

        return [gguf_path(model)]
    return sorted(p for p in root.rglob("*") if p.is_file())


def _code_digest() -> str:
    import importlib.util

    h = hashlib.sha256()
    for pkg in CODE_PACKAGES:
        spec = importlib.util.find_spec(pkg)
        root = Path(spec.submodule_search_locations[0])
        for p in sorted(root.rglob("*.py")):
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def package_versions(names) -> dict[str, str | None]:
    """name -> installed version (None when not installed)."""
    out = {}
    for p in names:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            out[p] = None
    return out


def cache_key(recipe: str, plan: dict, data: str | Path, formats: Sequence[str], model: str) -> str:
    """The entry's name: SHA-256 over the recipe, plan, data, formats, model files, toolchain and code."""
    files = model_files(model)
    roots = Path(model) if Path(model).is_dir() else None
    ident = {"recipe": recipe, "plan": plan, "data": file_digest(data), "formats": list(formats),
             "model": [(str(p.relative_to(roots)) if roots else p.name, file_digest(p)) for p in files],
             "toolchain": package_versions(TOOLCHAIN), "code": _code_digest()}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def restore(key: str, out: str | Path, formats: Sequence[str]):
    """Copy entry ``key`` to ``out`` -> its manifest, or None when there is no good entry
    (a damaged one is removed)."""
    from edgetune.contract import load_manifest

    entry = cache_dir() / key
    if not entry.is_dir():
        return None
    try:
        manifests = [load_manifest(entry, fmt) for fmt in formats]
    except EdgetuneError:
        shutil.rmtree(entry, ignore_errors=True)
        return None
    with replacing_directory(out) as tmp:
        shutil.copytree(entry, tmp, dirs_exist_ok=True)
    os.utime(entry)  # recently used: kept longest
    return manifests[0]


def store(key: str, artifact_dir: str | Path) -> None:
    """Copy a fresh artifact in as entry ``key`` (renamed into place, so readers never see half
    an entry) and drop the oldest entries past `MAX_ENTRIES`. A full disk only skips caching."""
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        try:
            shutil.copytree(artifact_dir, tmp, dirs_exist_ok=True)
            if (root / key).exists():
                shutil.rmtree(root / key)
            tmp.rename(root / key)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        entries = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[MAX_ENTRIES:]:
            shutil.rmtree(old, ignore_errors=True)
    except OSError:
        return


def cached_export(recipe: str, plan: dict, data: str | Path, formats: Sequence[str], out: str | Path,
                  overwrite: bool, export, progress=lambda msg: None):
    """``export()`` -> (manifest, compiled step), unless entry (recipe, plan, data, formats, model)
    exists: then the entry is copied to ``out`` and (manifest, None) returned."""
    from edgetune.errors import ConfigError

    if Path(out).exists() and not overwrite:
        raise ConfigError(f"{out} exists; choose another directory or pass overwrite=True (--overwrite)")
    progress("hashing the plan's inputs")
    key = cache_key(recipe, plan, data, formats, plan["model"])
    manifest = restore(key, out, formats)
    if manifest is not None:
        progress(f"unchanged plan: copied from the export cache ({cache_dir() / key})")
        return manifest, None
    manifest, compiled = export()
    store(key, out)
    return manifest, compiled

"""Checkpoint sidecars without torch: file names, the validated `<stem>.json`, resolving, listing and updating.

Serving (ONNX Runtime) needs only this: the sidecar says what the model is, how to preprocess for it and
which ONNX files were exported from it (with their SHA-256). `dance.models.checkpoint` adds the torch side.

Names: a checkpoint `<stem>` is `<stem>.safetensors` + `<stem>.json`; the suffix is appended to the whole
name (`default.v2` -> `default.v2.json`), never substituted for the last dotted part.
Schema: the sidecar is untrusted (anyone can drop one into weights/), so it is size-capped before parsing,
parsed without NaN/Infinity or huge integers, depth-capped, and every field that code reads is type- and
range-checked; any violation is one CheckpointError sentence.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dance import paths
from dance.config import CROP_MARGIN, cache_side
from dance.errors import CheckpointError
from dance.fileio import atomic_write_json

DEFAULT_NAME = "default"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".tar")

WEIGHTS_SUFFIX = ".safetensors"
SIDECAR_SUFFIX = ".json"
MAX_SIDECAR_BYTES = 8 * 1024 * 1024  # the shipped sidecars are ~8 KB; a split of 100k image names is ~3 MB
MAX_DEPTH = 16  # the shipped sidecars nest 4 deep
MAX_INT_DIGITS = 20  # seeds, sizes and counts; a 5000-digit integer is an attack, not a setting
MAX_CLASSES = 1000
MAX_CLASS_NAME = 200  # characters
MIN_STD, MAX_STD = 1e-3, 10.0  # normalisation of [0, 1] pixels; outside this the outputs are NaN or meaningless
MEAN_RANGE = (-10.0, 10.0)
IMAGE_SIZES = (32, 1024)


def stem_of(path: str | os.PathLike) -> Path:
    """`weights/x.v2`, `weights/x.v2.json` or `weights/x.v2.safetensors` -> `weights/x.v2` (only those suffixes go)."""
    path = Path(path)
    for suffix in (SIDECAR_SUFFIX, WEIGHTS_SUFFIX):
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def suffixed(stem: str | os.PathLike, suffix: str) -> Path:
    """`<stem><suffix>` with the whole stem kept (`a.v2` + `.json` = `a.v2.json`, unlike Path.with_suffix)."""
    stem = Path(stem)
    return stem.with_name(stem.name + suffix)


def weights_file(stem: str | os.PathLike) -> Path:
    """The checkpoint's safetensors file."""
    return suffixed(stem_of(stem), WEIGHTS_SUFFIX)


def sidecar_file(stem: str | os.PathLike) -> Path:
    """The checkpoint's JSON sidecar."""
    return suffixed(stem_of(stem), SIDECAR_SUFFIX)


def files(stem: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, sidecar) of a checkpoint stem."""
    return weights_file(stem), sidecar_file(stem)


# ---------------------------------------------------------------------------------------------- parsing


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (a recursive walk could itself overflow)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                return depth
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse(raw: bytes, where: Path | str) -> dict[str, Any]:
    """Sidecar bytes -> a validated dict; raises CheckpointError with one sentence."""
    if len(raw) > MAX_SIDECAR_BYTES:
        raise CheckpointError(f"{where}: sidecar is {len(raw) / 1e6:.1f} MB, over the "
                              f"{MAX_SIDECAR_BYTES // 2**20} MB limit.")
    try:
        meta = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_int=_bounded_int)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{where}: not valid JSON ({exc}).") from None
    except RecursionError:
        raise CheckpointError(f"{where}: sidecar nests deeper than {MAX_DEPTH} levels.") from None
    except ValueError as exc:  # NaN / Infinity / huge integers, from the hooks above
        raise CheckpointError(f"{where}: not valid JSON ({str(exc)[:120]}).") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: expected a JSON object.")
    if _depth(meta) > MAX_DEPTH:
        raise CheckpointError(f"{where}: sidecar nests deeper than {MAX_DEPTH} levels.")
    validate(meta, where)
    return meta


def read(stem: str | os.PathLike) -> tuple[dict[str, Any], bytes]:
    """Read and validate `<stem>.json` (size-capped before reading); returns (meta, raw bytes)."""
    path = sidecar_file(stem)
    try:
        if not path.is_file():
            raise CheckpointError(f"{path}: sidecar not found (a checkpoint is a .safetensors file plus its .json).")
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            raise CheckpointError(f"{path}: sidecar is {path.stat().st_size / 1e6:.1f} MB, over the "
                                  f"{MAX_SIDECAR_BYTES // 2**20} MB limit.")
        with path.open("rb") as handle:
            raw = handle.read(MAX_SIDECAR_BYTES + 1)  # a file growing after stat() is still bounded
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    return parse(raw, path), raw


# ---------------------------------------------------------------------------------------------- schema


def is_number(value: Any) -> bool:
    """A finite int or float (JSON booleans excluded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(meta: dict, key: str, low: float, high: float, where) -> None:
    values = meta[key]
    if not (isinstance(values, list) and len(values) == 3 and all(is_number(v) for v in values)):
        raise CheckpointError(f"{where}: {key!r} must be a list of 3 numbers.")
    if not all(low <= v <= high for v in values):
        raise CheckpointError(f"{where}: {key!r} values must lie between {low:g} and {high:g}.")


def _classes(meta: dict, where) -> None:
    classes = meta["classes"]
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) and c for c in classes):
        raise CheckpointError(f"{where}: 'classes' must be a list of at least 2 names.")
    if len(classes) > MAX_CLASSES:
        raise CheckpointError(f"{where}: 'classes' lists {len(classes)} names, over the limit of {MAX_CLASSES}.")
    if any(len(c) > MAX_CLASS_NAME for c in classes):
        raise CheckpointError(f"{where}: a class name is longer than {MAX_CLASS_NAME} characters.")
    if len(set(classes)) != len(classes):
        raise CheckpointError(f"{where}: 'classes' lists a name twice.")


# optional fields: the JSON type each must have when present (code reads them with .get and indexing)
OPTIONAL_TYPES: dict[str, type | tuple[type, ...]] = {
    "format": int, "created": str, "versions": dict, "config": dict, "data": dict, "history": list,
    "split": dict, "metrics": dict, "calibration": dict, "weights_sha256": str, "onnx": dict, "run_spec": dict,
}  # unsure_threshold and calibration.temperature: range-checked below
TYPE_WORDS = {int: "an integer", str: "a string", dict: "an object", list: "a list"}


def validate(meta: dict[str, Any], where: Path | str) -> None:
    """Check every field code reads; raises CheckpointError naming the first violation."""
    for key in ("arch", "classes", "image_size", "mean", "std"):
        if key not in meta:
            raise CheckpointError(f"{where}: missing field {key!r}.")
    if not isinstance(meta["arch"], str):
        raise CheckpointError(f"{where}: 'arch' must be a string.")
    _classes(meta, where)
    size = meta["image_size"]
    if not isinstance(size, int) or isinstance(size, bool) or not IMAGE_SIZES[0] <= size <= IMAGE_SIZES[1]:
        raise CheckpointError(f"{where}: 'image_size' must be an integer between {IMAGE_SIZES[0]} and "
                              f"{IMAGE_SIZES[1]}.")
    _numbers(meta, "mean", *MEAN_RANGE, where)
    _numbers(meta, "std", MIN_STD, MAX_STD, where)
    for key, kind in OPTIONAL_TYPES.items():
        if key in meta and (not isinstance(meta[key], kind) or isinstance(meta[key], bool)):
            raise CheckpointError(f"{where}: {key!r} must be {TYPE_WORDS[kind]}.")
    for key in ("holdout", "cv"):
        if not isinstance(meta.get("metrics", {}).get(key, {}), dict):
            raise CheckpointError(f"{where}: 'metrics.{key}' must be an object.")
    for precision, entry in meta.get("onnx", {}).items():
        if precision == "int8_refused":  # the check of an int8 export that was refused: no file, no hash
            if not isinstance(entry, dict):
                raise CheckpointError(f"{where}: 'onnx.int8_refused' must be an object.")
            continue
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)):
            raise CheckpointError(f"{where}: 'onnx.{precision}' must be an object with a 'sha256'.")
    val_images = meta.get("split", {}).get("val_images", [])
    if not isinstance(val_images, list) or not all(isinstance(v, str) for v in val_images):
        raise CheckpointError(f"{where}: 'split.val_images' must be a list of image names.")
    temperature = meta.get("calibration", {}).get("temperature", 1.0)
    if not is_number(temperature) or not 1e-2 <= temperature <= 1e2:
        raise CheckpointError(f"{where}: 'calibration' must hold a positive 'temperature' between 0.01 and 100.")
    threshold = meta.get("unsure_threshold", 0.0)
    if not is_number(threshold) or not 0 <= threshold <= 1:
        raise CheckpointError(f"{where}: 'unsure_threshold' must be a number between 0 and 1.")


# ---------------------------------------------------------------------------------------------- checkpoints


def is_default(path: str | os.PathLike, weights_dir: Path | None = None) -> bool:
    """Whether the files `path` would write are those of the shipped default checkpoint (compared resolved)."""
    roots = [weights_dir] if weights_dir else [paths.weights_root(), paths.WEIGHTS_DIR]  # the shipped one: always
    targets = {f.resolve() for f in files(path)}
    return any(targets & {f.resolve() for f in files(root / DEFAULT_NAME)} for root in roots)


def exists(stem: str | os.PathLike) -> bool:
    """Whether either file of the checkpoint `stem` exists."""
    return any(f.exists() for f in files(stem))


def resolve(name_or_path: str | os.PathLike | None, weights_dir: Path | None = None) -> Path:
    """A checkpoint name (`default`, `my-run.v2`) or path -> its stem; refuses pickle-based files."""
    text = str(name_or_path or DEFAULT_NAME)
    path = Path(text)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{text}: pickle-based weights files are refused (they can run code); use a .safetensors checkpoint."
        )
    if not path.parent.parts and not exists(path):
        path = (weights_dir or paths.weights_root()) / text  # a bare name means a checkpoint in weights/
    return stem_of(path)


def read_sidecar(stem: str | os.PathLike) -> dict[str, Any]:
    """Parse and validate `<stem>.json` against the schema above; raises CheckpointError."""
    return read(stem)[0]


def stored_crop_margin(meta: dict[str, Any]) -> float:
    """The crop margin the sidecar's run spec records (`dance.models.spec`), or CROP_MARGIN for older sidecars."""
    stored = meta.get("run_spec")
    margin = stored.get("crop_margin") if isinstance(stored, dict) else None
    return float(margin) if is_number(margin) and 1.0 <= margin <= 2.0 else CROP_MARGIN




class SidecarView:
    """What a sidecar says, for anything with `path` (the stem) and `meta` (the parsed sidecar)."""

    path: Path
    meta: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        """Class names, in output order."""
        return list(self.meta["classes"])

    @property
    def image_size(self) -> int:
        """Input side length in pixels."""
        return int(self.meta["image_size"])

    @property
    def mean(self) -> tuple[float, ...]:
        """Normalisation mean."""
        return tuple(self.meta["mean"])

    @property
    def std(self) -> tuple[float, ...]:
        """Normalisation std."""
        return tuple(self.meta["std"])

    @property
    def temperature(self) -> float:
        """Calibration temperature (1.0 when uncalibrated)."""
        return float(self.meta.get("calibration", {}).get("temperature", 1.0))

    @property
    def name(self) -> str:
        """The checkpoint's file stem."""
        return self.path.name

    @property
    def eval_side(self) -> int:
        """Shorter side an image is resized to before the squash to the input size (the run spec's margin)."""
        return cache_side(self.image_size, stored_crop_margin(self.meta))

    def uncalibrated(self):
        """The same checkpoint without its calibration: raw softmax probabilities and no "not sure" threshold."""
        meta = {k: v for k, v in self.meta.items() if k not in ("calibration", "unsure_threshold")}
        return dataclasses.replace(self, meta=meta)


@dataclass
class CheckpointInfo(SidecarView):
    """A checkpoint known by its sidecar alone (no weights loaded): what the ONNX serving path needs."""

    path: Path
    meta: dict[str, Any]


def read_info(name_or_path: str | os.PathLike | None = None, weights_dir: Path | None = None) -> CheckpointInfo:
    """Resolve a checkpoint name or path and read its sidecar; raises CheckpointError."""
    stem = resolve(name_or_path, weights_dir)
    return CheckpointInfo(stem, read_sidecar(stem))


def list_checkpoints(weights_dir: Path | None = None) -> list[Path]:
    """Stems of every checkpoint (sidecar + weights) in `weights_dir`, default first, then newest first."""
    weights_dir = weights_dir or paths.weights_root()
    if not weights_dir.is_dir():
        return []
    found = []
    for p in weights_dir.glob("*.json"):
        stem = stem_of(p)
        if stem.name.endswith(".state") or not weights_file(stem).is_file():
            continue  # <name>.state.* is a running job's resumable state, not a checkpoint
        try:
            found.append((stem.name != DEFAULT_NAME, -p.stat().st_mtime, str(stem), stem))
        except FileNotFoundError:
            continue  # removed since the listing (a finished job deletes its state files)
    return [stem for *_, stem in sorted(found)]


def update_sidecar(stem: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into an existing sidecar (validated again), atomically."""
    stem = stem_of(stem)
    meta = read_sidecar(stem)
    meta.update(fields)
    validate(meta, sidecar_file(stem))
    atomic_write_json(sidecar_file(stem), meta)
    return meta


def holdout_names(meta: dict) -> list[str]:
    """Image names the checkpoint held out during training (empty when it trained on everything)."""
    return list(meta.get("split", {}).get("val_images", []))

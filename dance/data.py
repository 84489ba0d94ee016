"""Data sets on disk: locating them, validating CSV rows, decoded-once image caches, grouped stratified splits.

Labels CSVs are untrusted. Harmless variations are normalised silently:
  - a UTF-8 byte-order mark, CRLF or CR line ends, and blank lines are ignored;
  - whitespace around column names, image names and labels is stripped;
  - column names are matched case-insensitively (`Image`/`filename`/`file`, `target`/`label`/`class`);
  - labels are lower-cased (`Kathak` and `kathak` are one class);
  - extra columns are ignored.
Everything else is a problem, and every problem row is listed at once with its line number:
  - a row with the wrong number of fields, an empty image name or an empty label;
  - a control character (tab, newline inside quotes, ...) in a name or label;
  - an absolute path, a drive letter, a `..` component or a symlink resolving outside the image folder;
  - an image that does not exist, a label not among the known classes, a duplicate row
    (two rows naming the same file, even spelled differently, e.g. `a.jpg` and `./a.jpg`).
A file that is not UTF-8, contains NUL bytes, is empty, has no recognised header or is not
parseable as CSV is refused as a whole with one message.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from dance.errors import DataError, ImageError
from dance.fileio import atomic_write_bytes
from dance.images import load_image, resize_shorter, to_uint8_tensor

PROJECT_ROOT = Path(__file__).resolve().parents[1]
IMAGE_COLUMNS = ("image", "filename", "file")
LABEL_COLUMNS = ("target", "label", "class")
Progress = Callable[[int, int], None]


def candidate_dirs(explicit: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The places searched for a data set, in order, each with where it came from."""
    found: list[tuple[str, Path]] = []
    if explicit:
        found.append(("--data", Path(explicit)))
    if os.environ.get("DANCE_DATA"):
        found.append(("$DANCE_DATA", Path(os.environ["DANCE_DATA"])))
    for base in dict.fromkeys([Path.cwd(), PROJECT_ROOT]):
        found.append(("data/dance", base / "data" / "dance"))
        found.append(("../shared/data/dance", base.parent / "shared" / "data" / "dance"))
    return found


def find_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Return the first data folder holding train.csv, or raise DataError naming every place tried."""
    tried = candidate_dirs(explicit)
    if explicit:
        tried = tried[:1]  # an explicit --data must exist; silently falling back would mislead
    for _, path in tried:
        if (path / "train.csv").is_file() or (path / "test.csv").is_file():
            return path.resolve()
    places = "; ".join(f"{how} = {path}" for how, path in tried)
    raise DataError(f"No data set found (a folder with train.csv). Looked in: {places}.")


@dataclass
class RowProblem:
    """One invalid CSV row: its line number in the file, the image name and the reason."""

    line: int
    image: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line} ({self.image or 'no name'}): {self.reason}"


@dataclass
class LabelTable:
    """Validated rows of a labels CSV plus the rows that failed validation."""

    frame: pd.DataFrame  # columns: image, label (label empty for unlabelled sets), path, line
    problems: list[RowProblem] = field(default_factory=list)
    source: Path | None = None

    def raise_if_invalid(self) -> None:
        """Raise one DataError listing every bad row."""
        if self.problems:
            shown = "\n".join(f"  - {p}" for p in self.problems[:50])
            more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
            raise DataError(f"{self.source}: {len(self.problems)} invalid row(s):\n{shown}{more}")


def _read_csv(csv_path: Path) -> tuple[pd.DataFrame, list[int], list[RowProblem]]:
    """Read a CSV as strings: (rows with lower-case column names, each row's line number, malformed rows)."""
    try:
        raw = csv_path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{csv_path}: file not found.") from None
    except OSError as exc:
        raise DataError(f"{csv_path}: cannot be read ({exc.strerror or exc}).") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{csv_path}: not UTF-8 text; save it as UTF-8.") from None
    if "\x00" in text:
        raise DataError(f"{csv_path}: contains NUL bytes; not a text CSV.")
    if not text.strip():
        raise DataError(f"{csv_path}: file is empty.")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    records, lines, problems = [], [], []
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank lines carry nothing
            if header is None:
                header = [cell.strip().lower().lstrip("\ufeff") for cell in row]
                continue
            line = reader.line_num  # physical line where the record ends (quoted fields may span lines)
            if len(row) != len(header):
                first = row[0].strip() if row else ""
                count = f"{len(row)} field" + ("s" if len(row) != 1 else "")
                problems.append(RowProblem(line, first, f"has {count}, expected {len(header)}"))
                continue
            records.append([cell.strip() for cell in row])
            lines.append(line)
    except csv.Error as exc:
        raise DataError(f"{csv_path}: not a readable CSV (line {reader.line_num}: {exc}).") from None
    if header is None:
        raise DataError(f"{csv_path}: file is empty (no header row).")
    return pd.DataFrame(records, columns=header, dtype=str), lines, problems


def _pick_column(frame: pd.DataFrame, names: Sequence[str]) -> str | None:
    """First of `names` present among the frame's columns."""
    return next((n for n in names if n in frame.columns), None)


def _check_name(name: str, image_dir: Path, root: Path) -> tuple[str | None, Path | None]:
    """(reason why an image name is unsafe or missing, None) or (None, resolved path inside the folder)."""
    if not name:
        return "empty image name", None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "control character in image name", None
    if Path(name).is_absolute() or name.startswith(("/", "\\")) or ":" in name:
        return "absolute path not allowed", None
    if ".." in Path(name.replace("\\", "/")).parts:
        return "name escapes the image folder ('..')", None
    path = image_dir / name
    try:
        resolved = path.resolve()
        if resolved == root:
            return "not a file name", None
        if root not in resolved.parents:
            return "name resolves outside the image folder (symlink?)", None
        if not resolved.is_file():
            return "image file not found", None
    except (OSError, RuntimeError, ValueError) as exc:
        return f"path cannot be used ({getattr(exc, 'strerror', None) or type(exc).__name__})", None
    return None, resolved


def read_labels(
    csv_path: str | os.PathLike,
    image_dir: str | os.PathLike,
    classes: Sequence[str] | None = None,
    labelled: bool = True,
) -> LabelTable:
    """Read and validate a labels CSV (`Image,target`), collecting every bad row instead of stopping at one.

    Harmless variations are normalised: BOM, CRLF, surrounding whitespace, column-name case, label case.
    """
    csv_path, image_dir = Path(csv_path), Path(image_dir)
    frame, lines, problems = _read_csv(csv_path)
    image_col = _pick_column(frame, IMAGE_COLUMNS)
    label_col = _pick_column(frame, LABEL_COLUMNS)
    if image_col is None or (labelled and label_col is None):
        want = "Image,target" if labelled else "Image"
        header = ",".join(frame.columns)
        hint = " (the file seems to have no header row)" if any("." in c for c in frame.columns) else ""
        if not hint and len(frame.columns) == 1 and any(sep in header for sep in ";\t|"):
            hint = " (columns must be separated by commas)"
        raise DataError(f"{csv_path}: expected columns {want}, found {header!r}{hint}.")
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: image folder not found.")
    root = image_dir.resolve()
    known = {c.lower() for c in classes} if classes else None
    rows, seen = [], {}
    names = frame.iloc[:, list(frame.columns).index(image_col)].tolist()
    labels = frame.iloc[:, list(frame.columns).index(label_col)].tolist() if label_col else [""] * len(names)
    for line, name, label in zip(lines, names, labels):
        label = label.lower()
        reason, resolved = _check_name(name, image_dir, root)
        if reason is None and labelled and not label:
            reason = "empty label"
        if reason is None and any(ord(ch) < 32 or ord(ch) == 127 for ch in label):
            reason = "control character in label"
        if reason is None and known is not None and labelled and label not in known:
            reason = f"unknown label {label!r}"
        if reason is None and resolved in seen:
            reason = f"duplicate of line {seen[resolved]}"
        if reason:
            problems.append(RowProblem(line, name, reason))
            continue
        seen[resolved] = line
        rows.append({"image": name, "label": label, "path": str(image_dir / name), "line": line})
    problems.sort(key=lambda p: p.line)
    table = pd.DataFrame(rows, columns=["image", "label", "path", "line"])
    if not rows and not problems:
        raise DataError(f"{csv_path}: no rows.")
    return LabelTable(table, problems, csv_path)


@dataclass
class LabelledSet:
    """Validated labelled images: paths, integer labels and the sorted class names."""

    paths: list[Path]
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def names(self) -> list[str]:
        """File names (what the CSV lists)."""
        return [p.name for p in self.paths]

    def subset(self, index: Iterable[int]) -> "LabelledSet":
        """The rows at `index`, with the same classes."""
        index = list(index)
        return LabelledSet([self.paths[i] for i in index], self.labels[index], self.classes)


def load_labelled(
    data_dir: str | os.PathLike, csv_name: str = "train.csv", images: str = "train", limit: int = 0,
    classes: Sequence[str] | None = None,
) -> LabelledSet:
    """Read train.csv (or another labels CSV), validate it fully and return a LabelledSet; raises DataError."""
    data_dir = Path(data_dir)
    table = read_labels(data_dir / csv_name, data_dir / images, classes=classes)
    table.raise_if_invalid()
    frame = table.frame
    if limit:
        frame = _stratified_head(frame, limit)
    found = sorted(frame["label"].unique())
    names = list(classes) if classes else found
    if len(names) < 2:
        raise DataError(f"{data_dir / csv_name}: needs at least 2 classes, found {len(names)}.")
    lookup = {c.lower(): i for i, c in enumerate(names)}
    labels = np.array([lookup[x] for x in frame["label"]], dtype=np.int64)
    return LabelledSet([Path(p) for p in frame["path"]], labels, names)


def _stratified_head(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    """The first rows of each class in turn, so a small subset keeps every class."""
    order = frame.groupby("label", sort=True).cumcount()
    return frame.assign(_rank=order).sort_values(["_rank", "label"], kind="stable").head(limit).drop(columns="_rank")


def load_unlabelled(data_dir: str | os.PathLike, csv_name: str = "test.csv", images: str = "test") -> list[Path]:
    """Paths listed in test.csv, validated like training rows."""
    data_dir = Path(data_dir)
    table = read_labels(data_dir / csv_name, data_dir / images, labelled=False)
    table.raise_if_invalid()
    return [Path(p) for p in table.frame["path"]]


class ImageCache:
    """Decodes each image once into a uint8 (3, H, W) tensor with the shorter side at most `side`.

    Held in memory; with `disk_dir`, also stored as .npy keyed by the file's SHA-1 (never pickled).
    """

    def __init__(self, side: int, disk_dir: str | os.PathLike | None = None):
        self.side = side
        self.disk_dir = Path(disk_dir) if disk_dir else None
        self._memory: dict[str, torch.Tensor] = {}

    def get(self, path: str | os.PathLike) -> torch.Tensor:
        """Decoded tensor for `path`; raises ImageError for an unreadable file."""
        key = str(path)
        if key not in self._memory:
            self._memory[key] = self._decode(Path(path))
        return self._memory[key]

    def _decode(self, path: Path) -> torch.Tensor:
        """Decode from the disk cache when present, else from the image file."""
        disk_file = None
        if self.disk_dir is not None and path.is_file():
            digest = hashlib.sha1(path.read_bytes()).hexdigest()
            disk_file = self.disk_dir / f"{digest}-{self.side}.npy"
            if disk_file.is_file():
                try:
                    return torch.from_numpy(np.load(disk_file, allow_pickle=False))
                except (OSError, ValueError):
                    pass  # a damaged cache entry is simply rebuilt
        tensor = to_uint8_tensor(resize_shorter(load_image(path, name=path.name), self.side))
        if disk_file is not None:
            buffer = io.BytesIO()
            np.save(buffer, tensor.numpy(), allow_pickle=False)
            atomic_write_bytes(disk_file, buffer.getvalue())
        return tensor

    def load_all(self, paths: Sequence[Path], progress: Progress | None = None) -> list[torch.Tensor]:
        """Decode every path up front; raises one DataError listing every unreadable image."""
        tensors, errors = [], []
        for i, path in enumerate(paths):
            try:
                tensors.append(self.get(path))
            except ImageError as exc:
                errors.append(str(exc))
            if progress:
                progress(i + 1, len(paths))
        if errors:
            shown = "\n".join(f"  - {e}" for e in errors[:50])
            raise DataError(f"{len(errors)} image(s) cannot be read:\n{shown}")
        return tensors


def _dhash(tensor: torch.Tensor) -> int:
    """64-bit difference hash of an image: robust to resizing and recompression."""
    gray = tensor.float().mean(0, keepdim=True)[None]
    small = torch.nn.functional.interpolate(gray, size=(8, 9), mode="area")[0, 0]
    bits = (small[:, 1:] > small[:, :-1]).flatten().tolist()
    return sum(1 << i for i, b in enumerate(bits) if b)


def source_groups(tensors: Sequence[torch.Tensor], max_distance: int = 4) -> np.ndarray:
    """Group ids such that near-duplicate images (same source photo) share a group.

    Splits keep each group on one side, so a resized or re-encoded copy of a validation
    image never sits in training.
    """
    hashes = np.array([_dhash(t) for t in tensors], dtype=np.uint64)
    parent = list(range(len(hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(hashes)):
        distance = np.array([bin(int(x)).count("1") for x in (hashes[i + 1:] ^ hashes[i])], dtype=np.int64)
        for j in np.nonzero(distance <= max_distance)[0]:
            parent[find(i + 1 + int(j))] = find(i)
    roots = [find(i) for i in range(len(hashes))]
    _, groups = np.unique(roots, return_inverse=True)
    return groups.astype(np.int64)


def kfold_splits(
    labels: np.ndarray, groups: np.ndarray, k: int = 5, seed: int = 0, repeats: int = 1
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, grouped k-fold splits (repeated with seeds seed, seed+1, ...): list of (train, val) indices."""
    if k < 2:
        raise DataError("k-fold needs k >= 2.")
    smallest = int(np.bincount(labels).min())
    if smallest < k:
        raise DataError(f"k={k} folds need at least {k} images in every class; the smallest class has {smallest}.")
    from sklearn.model_selection import StratifiedGroupKFold  # imported here: sklearn costs ~1 s at app start

    splits = []
    dummy = np.zeros(len(labels))
    for r in range(repeats):
        folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed + r)
        splits.extend((np.sort(tr), np.sort(va)) for tr, va in folds.split(dummy, labels, groups))
    return splits


def holdout_split(labels: np.ndarray, groups: np.ndarray, val_fraction: float = 0.2, seed: int = 0):
    """Stratified, grouped hold-out split (80/20 by default): (train indices, validation indices)."""
    if not 0 < val_fraction < 0.5:
        raise DataError("val_fraction must be between 0 and 0.5.")
    k = max(2, round(1 / val_fraction))
    return kfold_splits(labels, groups, k=k, seed=seed)[0]


class TensorImageDataset(Dataset):
    """Cached uint8 tensors + labels, with a transform applied on each access.

    A key may be an index or a `(seed, index)` pair from `SeededSampler`: the transform's randomness is
    then seeded by that pair alone, so an image's augmentation depends on (run seed, epoch, image) and not
    on which process or worker draws it, nor on what was drawn before.
    """

    def __init__(self, tensors: Sequence[torch.Tensor], labels: np.ndarray, transform: Callable):
        self.tensors, self.labels, self.transform = tensors, labels, transform

    def __len__(self) -> int:
        return len(self.tensors)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            seed, index = key
            with torch.random.fork_rng(devices=[]):  # leaves the caller's random stream untouched
                torch.manual_seed((seed * 1_000_003 + index) % 2**62)
                return self.transform(self.tensors[index]), int(self.labels[index])
        return self.transform(self.tensors[key]), int(self.labels[key])


class SeededSampler(Sampler):
    """Wraps a shuffling sampler and yields `(epoch seed, index)`; `set_epoch` reshuffles for a new epoch.

    The order depends only on the epoch seed (or, for a DistributedSampler, on its seed and the epoch), and
    each image's augmentation on the pair, so persistent DataLoader workers and `--resume` stay exact.
    """

    def __init__(self, inner: Sampler):
        self.inner, self.epoch_seed = inner, 0

    def set_epoch(self, epoch: int, epoch_seed: int) -> None:
        """Prepare epoch `epoch`, whose randomness derives from `epoch_seed`."""
        self.epoch_seed = epoch_seed
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)  # DistributedSampler: shard shuffle from its seed + epoch
        elif getattr(self.inner, "generator", None) is not None:
            self.inner.generator.manual_seed(epoch_seed)

    def __iter__(self):
        seed = self.epoch_seed
        return ((seed, int(i)) for i in self.inner)

    def __len__(self) -> int:
        return len(self.inner)

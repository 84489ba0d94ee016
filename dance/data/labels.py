"""Labels CSV validation: read train.csv / test.csv into checked rows, load labelled and unlabelled sets."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from dance.errors import DataError

IMAGE_COLUMNS = ("image", "filename", "file")
LABEL_COLUMNS = ("target", "label", "class")


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
    if Path(name).is_absolute() or name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return "absolute path not allowed", None  # a drive (`C:x.jpg`, `C:\\x`) too; `img:1.jpg` is a plain name
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

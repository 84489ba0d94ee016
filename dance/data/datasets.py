"""User data sets: one folder per set under paths.user_data_root() (the project's git-ignored data/), each an
ordinary data set (train.csv + train/) so `dance check`, `train` and `cv` work on it unchanged.

A set comes from a zip (dance.data.archive), from class names with images dropped into each (Teachable
Machine style) or from webcam shots per class. It is written into a temp folder and renamed into place,
so a crash or a refused upload never leaves half a set. `validate_set` runs the same checks as `dance check`
(dance.data.labels.read_labels and the one image decoder), collecting every problem instead of stopping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from dance import paths
from dance.data.archive import IMAGE_SUFFIXES, ZipSource, labels_csv, read_dataset_zip
from dance.data.cache import ImageCache
from dance.data.images import UPLOAD_TYPES
from dance.data.labels import read_labels
from dance.data.splits import GROUP_SIDE, source_groups
from dance.errors import DataError, ImageError
from dance.fileio import atomic_write_bytes

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # no dots: checkpoint stems take suffixes
RESERVED = {"dance"}  # data/dance is where the project looks for the dance data set itself
MIN_PER_CLASS = 2  # fewer images than this in a class: nothing to learn from, nothing to check against
INFO_FILE = "set.json"
MAX_CLASS_NAME = 64


@dataclass
class SetInfo:
    """A user data set on disk: its name, folder and what set.json says about where it came from."""

    name: str
    path: Path
    source: str = ""
    created: str = ""


@dataclass
class SetReport:
    """The `dance check` verdict on a set: valid rows, every problem, class counts, near-duplicate groups."""

    path: Path
    rows: pd.DataFrame  # image, label, path of every row that passed (image decoded)
    problems: list[str]
    counts: dict[str, int]
    duplicates: list[list[str]] = field(default_factory=list)  # paths of images that look like the same photo
    bad_images: list[str] = field(default_factory=list)  # CSV names of rows whose image failed to decode

    @property
    def blockers(self) -> list[str]:
        """Why the set cannot be trained yet (empty when it can)."""
        found = []
        if self.problems:
            found.append(f"{len(self.problems)} problem(s) listed below must be fixed first")
        if len(self.counts) < 2:
            found.append(f"a classifier needs at least 2 classes; this set has {len(self.counts)}")
        small = [c for c, n in self.counts.items() if n < MIN_PER_CLASS]
        if small:
            found.append(f"every class needs at least {MIN_PER_CLASS} images ({', '.join(small)} has fewer)")
        return found

    @property
    def ready(self) -> bool:
        """Whether training may start."""
        return not self.blockers


def check_name(name: str, replace: bool = False) -> Path:
    """The folder for a new set called `name`; raises DataError for a bad or taken name (unless `replace`)."""
    if not NAME_PATTERN.match(name or ""):
        raise DataError(f"Data set name {name!r}: use 1-64 letters, digits, '-' or '_', starting with a "
                        "letter or digit.")
    if name.lower() in RESERVED:
        raise DataError(f"Data set name {name!r} is reserved (data/{name} is where the project's own data set "
                        "lives); choose another.")
    folder = paths.user_data_root() / name
    if folder.exists() and not replace:
        raise DataError(f"A data set named {name!r} already exists in {folder.parent}; choose a new name or "
                        "replace it.")
    return folder


def set_path(name: str) -> Path:
    """The folder of an existing set; raises DataError when there is none."""
    folder = paths.user_data_root() / name
    if not NAME_PATTERN.match(name or "") or not (folder / "train.csv").is_file():
        raise DataError(f"No data set named {name!r} in {paths.user_data_root()}.")
    return folder


def _inside(root: Path, rel: str) -> Path:
    """`root/rel`, refusing any path that would leave `root` (defence in depth: names are checked earlier)."""
    target = (root / rel).resolve()
    if root.resolve() not in target.parents:
        raise DataError(f"{rel!r}: path escapes the data set folder.")
    return target


def write_set(name: str, files: Iterable[tuple[str, bytes]], csv_bytes: bytes, source: str,
              replace: bool = False, ignored: Sequence[str] = ()) -> SetInfo:
    """Write train/<files> and train.csv into a temp folder, then rename it to user_data_root()/name."""
    final = check_name(name, replace)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=final.parent))
    try:
        images = tmp / "train"
        images.mkdir()
        for rel, data in files:
            target = _inside(images, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():  # a second member with the same name fails, never overwrites
                raise DataError(f"{rel}: two images with this name (names must be unique within a class).")
            atomic_write_bytes(target, data)
        atomic_write_bytes(tmp / "train.csv", csv_bytes)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        meta = {"name": name, "source": source, "created": created, "ignored": list(ignored)[:100]}
        atomic_write_bytes(tmp / INFO_FILE, (json.dumps(meta, indent=2) + "\n").encode())
        if final.exists():  # replace: move the old set aside, the new one in, then drop the old
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", suffix=".tmp", dir=final.parent))
            os.replace(final, old / name)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SetInfo(name, final, source, created)


def import_zip(source: ZipSource, name: str, replace: bool = False, display: str | None = None) -> SetInfo:
    """Check a data-set zip completely, then write it as the set `name` (nothing is written when it is refused)."""
    check_name(name, replace)
    display = display or (str(source) if isinstance(source, (str, os.PathLike)) else "upload.zip")
    with read_dataset_zip(source, display) as archive:
        return write_set(name, archive.files(), archive.plan.csv_bytes, f"zip {PurePosixPath(display).name} "
                         f"({archive.plan.layout})", replace, archive.plan.ignored)


def check_class_name(label: str) -> str:
    """A class name from a person, stripped; raises DataError when it cannot be a label and a folder name."""
    label = label.strip()
    if not label:
        raise DataError("Every class needs a name.")
    if len(label) > MAX_CLASS_NAME:
        raise DataError(f"Class name {label[:20]!r}...: longer than {MAX_CLASS_NAME} characters.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in label) or any(ch in label for ch in "/\\:") \
            or label.startswith("."):
        raise DataError(f"Class name {label!r}: no '/', '\\', ':', control characters or leading '.'.")
    return label


def _safe_file_name(name: str, index: int) -> str:
    """An upload's file name made safe for disk and CSV: its base name, odd characters replaced, numbered."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = re.sub(r"[^\w.-]", "_", base).lstrip(".") or "image"
    return f"{index:04d}-{base[-80:]}"


def create_from_classes(name: str, classes: Mapping[str, Sequence[tuple[str, bytes]]], replace: bool = False,
                        source: str = "classes") -> SetInfo:
    """A set from {class name: [(file name, bytes), ...]} (uploads or webcam shots); files are checked later."""
    check_name(name, replace)
    labels: dict[str, str] = {}
    for raw in classes:
        label = check_class_name(raw)
        if label.lower() in labels:
            raise DataError(f"Classes {labels[label.lower()]!r} and {label!r} differ only in case; labels are "
                            "case-insensitive, so use one name.")
        labels[label.lower()] = label
    if len(labels) < 2:
        raise DataError(f"A classifier needs at least 2 classes; {len(labels)} given.")
    rows, files = [], []
    for raw, items in classes.items():
        label = raw.strip()
        if not items:
            raise DataError(f"Class {label!r} has no images yet.")
        for file_name, data in items:
            if not file_name.lower().endswith(IMAGE_SUFFIXES):
                raise DataError(f"{file_name}: not an image file name ({', '.join(UPLOAD_TYPES)}).")
            # numbered across all classes: file names (not paths) identify hold-out images in a sidecar
            rel = f"{label}/{_safe_file_name(file_name, len(rows))}"
            rows.append((rel, label))
            files.append((rel, data))
    return write_set(name, files, labels_csv(rows), source, replace)


def list_sets() -> list[SetInfo]:
    """Every set under user_data_root() (a folder with train.csv), sorted by name."""
    root = paths.user_data_root()
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not (folder / "train.csv").is_file():
            continue
        try:
            meta = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        found.append(SetInfo(folder.name, folder, str(meta.get("source", "")), str(meta.get("created", ""))))
    return found


def training_folder(meta: dict) -> Path | None:
    """The user set a checkpoint was trained on (its sidecar's data folder, when that is a set here), else None."""
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    name = str(data.get("folder", ""))
    if not NAME_PATTERN.match(name) or name.lower() in RESERVED:
        return None
    folder = paths.user_data_root() / name
    return folder if (folder / "train.csv").is_file() else None


def delete_set(name: str) -> None:
    """Remove a set's folder (renamed aside first, so a half-deleted set never looks like a set)."""
    folder = set_path(name)
    if name.lower() in RESERVED:
        raise DataError(f"{folder} is the project's own data set; it is never deleted from here.")
    trash = Path(tempfile.mkdtemp(prefix=f".{name}.deleted.", suffix=".tmp", dir=folder.parent))
    os.replace(folder, trash / name)
    shutil.rmtree(trash, ignore_errors=True)


def validate_set(folder: str | os.PathLike, hash_side: int = GROUP_SIDE) -> SetReport:
    """Every row and image of a set checked as `dance check` does, plus class counts and near-duplicate groups
    (hashed as training groups them, so the report shows exactly the groups that splits keep together)."""
    folder = Path(folder)
    table = read_labels(folder / "train.csv", folder / "train")
    problems = [str(p) for p in table.problems]
    cache = ImageCache(side=hash_side)
    keep, tensors, bad = [], [], []
    for index, row in table.frame.iterrows():
        try:
            tensors.append(cache.get(row["path"]))
            keep.append(index)
        except ImageError as exc:
            problems.append(f"line {row['line']} ({row['image']}): {str(exc).split(': ', 1)[-1]}")
            bad.append(row["image"])
    rows = table.frame.loc[keep, ["image", "label", "path"]].reset_index(drop=True)
    counts = {str(k): int(v) for k, v in rows["label"].value_counts().sort_index().items()}
    duplicates = []
    if tensors:
        groups = source_groups(tensors)
        for group in np.unique(groups):
            members = np.nonzero(groups == group)[0]
            if len(members) > 1:
                duplicates.append([rows["path"][i] for i in members])
    return SetReport(folder, rows, problems, counts, duplicates, bad)


def drop_problem_rows(folder: str | os.PathLike) -> int:
    """Rewrite a user set's train.csv with only the rows that pass (the images stay on disk); returns rows dropped."""
    folder = Path(folder)
    if paths.user_data_root().resolve() not in folder.resolve().parents:
        raise DataError(f"{folder}: only data sets under {paths.user_data_root()} are edited.")
    report = validate_set(folder)
    before = len(report.rows) + len(report.problems)
    atomic_write_bytes(folder / "train.csv", labels_csv(list(zip(report.rows["image"], report.rows["label"]))))
    return before - len(report.rows)

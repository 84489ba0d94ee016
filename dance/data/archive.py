"""Untrusted zip archives: every member checked (names, links, sizes, counts, types) before a byte is extracted.

A data-set zip has one of two layouts: one folder per class (`cats/1.jpg`, `dogs/2.png`, optionally all
inside one top folder), or one labels CSV (`Image,target`) with the images beside it or in `train/`.
`read_dataset_zip` checks the whole archive and returns a plan; `DatasetZip.files()` then streams the
members one at a time (a 500 MB archive never sits in memory at once).
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import BinaryIO, Iterator, Union

from dance.data.images import MAX_BYTES, UPLOAD_TYPES
from dance.errors import DataError

ZipSource = Union[str, os.PathLike, bytes, BinaryIO]

MAX_MEMBERS = 10_000  # files in one archive
MAX_TOTAL_BYTES = 1_000_000_000  # uncompressed size of everything extracted
MAX_MEMBER_BYTES = MAX_BYTES  # one file (the image loader's own limit)
MAX_RATIO = 100  # uncompressed / compressed per member; images barely compress, bombs compress 1000x
RATIO_FLOOR = 1_000_000  # small members may compress well (a CSV, a flat PNG): the ratio is checked above this
MAX_NAME = 200  # characters in one member name
IMAGE_SUFFIXES = tuple(f".{t}" for t in UPLOAD_TYPES)
JUNK = re.compile(r"(^|/)(__MACOSX/|\.DS_Store$|Thumbs\.db$|desktop\.ini$|\._)", re.IGNORECASE)
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class Member:
    """One file to extract: the archive entry and its path inside the new set's image folder."""

    info: zipfile.ZipInfo
    target: str  # relative POSIX path under train/
    label: str | None  # folder layout: its class; CSV layout: None (the CSV says)


@dataclass
class ZipPlan:
    """A checked archive: what will be written, which layout, which members were left out."""

    members: list[Member]
    layout: str  # "folders" or "csv"
    csv_bytes: bytes
    ignored: list[str] = field(default_factory=list)  # OS junk and images outside the image folder

    @property
    def classes(self) -> list[str]:
        """Class names of a folder-layout archive (sorted); empty for the CSV layout (the CSV holds them)."""
        return sorted({m.label for m in self.members if m.label})


def open_zip(source: ZipSource, name: str) -> zipfile.ZipFile:
    """Open a zip from a path, bytes or a binary file object; one sentence when it is not a zip."""
    try:
        return zipfile.ZipFile(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
    except FileNotFoundError:
        raise DataError(f"{name}: file not found.") from None
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise DataError(f"{name}: not a zip archive (or a damaged one).") from None
    except OSError as exc:
        raise DataError(f"{name}: cannot be read ({exc.strerror or exc}).") from None


def member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member must not be extracted (unsafe name, link, encryption, size), or None."""
    raw = info.filename
    if "\\" in raw:
        return "uses backslashes in its path"
    if raw.startswith("/") or _DRIVE.match(raw):
        return "has an absolute path"
    parts = [p for p in raw.split("/") if p]
    if any(p in (".", "..") for p in parts):
        return "escapes the archive's folder ('..')"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw) or ":" in raw:
        return "has a control character or ':' in its name"
    if len(raw) > MAX_NAME:
        return f"has a name longer than {MAX_NAME} characters"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # zips often store no file type
        return "is not a regular file"
    if info.flag_bits & 0x1:
        return "is encrypted"
    if info.file_size > MAX_MEMBER_BYTES:
        return f"is {info.file_size / 1e6:.0f} MB, over the {MAX_MEMBER_BYTES / 1e6:.0f} MB limit per file"
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(1, info.compress_size):
        return f"compresses {info.file_size / max(1, info.compress_size):.0f}:1 (a zip bomb?)"
    return None


def safe_members(zf: zipfile.ZipFile, name: str) -> list[zipfile.ZipInfo]:
    """The archive's file members after checking every entry; raises DataError for the first unsafe one."""
    infos = zf.infolist()
    files = [i for i in infos if not i.is_dir()]
    if len(files) > MAX_MEMBERS:
        raise DataError(f"{name}: holds {len(files)} files, over the limit of {MAX_MEMBERS}.")
    total = sum(i.file_size for i in files)
    if total > MAX_TOTAL_BYTES:
        raise DataError(f"{name}: would extract to {total / 1e6:.0f} MB, over the {MAX_TOTAL_BYTES / 1e9:.0f} GB "
                        "limit (a zip bomb?).")
    seen: dict[str, str] = {}
    for info in infos:
        problem = member_problem(info)
        if problem:
            raise DataError(f"{name}: member {info.filename!r} {problem}; nothing was extracted.")
        key = info.filename.rstrip("/").lower()
        if not info.is_dir() and key in seen:
            raise DataError(f"{name}: members {seen[key]!r} and {info.filename!r} name the same file; "
                            "nothing was extracted.")
        seen[key] = info.filename
    return files


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> bytes:
    """A member's bytes, bounded by its declared size (a lying header cannot inflate past it)."""
    try:
        with zf.open(info) as handle:
            data = handle.read(info.file_size + 1)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise DataError(f"{name}: member {info.filename!r} cannot be read ({str(exc)[:100]}).") from None
    if len(data) != info.file_size:
        raise DataError(f"{name}: member {info.filename!r} is not the size its header declares.")
    return data


def _strip_top(paths: list[str]) -> str:
    """The one top folder every path sits in ('' when there is none): zipping a folder adds it."""
    tops = {p.split("/", 1)[0] for p in paths}
    if len(tops) == 1 and all("/" in p for p in paths):
        return next(iter(tops)) + "/"
    return ""


def _is_image(path: str) -> bool:
    """Whether a member name has an image extension (its bytes are checked later by the image loader)."""
    return path.lower().endswith(IMAGE_SUFFIXES)


def _unique(file_name: str, taken: set[str]) -> str:
    """`file_name`, or `stem-2.jpg`, `stem-3.jpg`... when another class folder has the same name: file names (not
    paths) identify a checkpoint's hold-out images, so cats/1.jpg and dogs/1.jpg must not share one."""
    stem, dot, suffix = file_name.rpartition(".")
    candidate, n = file_name, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem}-{n}{dot}{suffix}"
    taken.add(candidate.lower())
    return candidate


def _choose_csv(csvs: list[str], name: str) -> str:
    """The labels CSV among several: the only one, or train.csv."""
    if len(csvs) == 1:
        return csvs[0]
    named = [c for c in csvs if PurePosixPath(c).name.lower() == "train.csv"]
    if len(named) == 1:
        return named[0]
    raise DataError(f"{name}: holds {len(csvs)} CSV files ({', '.join(csvs[:3])}); expected one Image,target CSV "
                    "(or one named train.csv).")


def _plan(zf: zipfile.ZipFile, name: str) -> ZipPlan:
    """Work out the layout and the target of every member."""
    infos = safe_members(zf, name)
    ignored = [i.filename for i in infos if JUNK.search(i.filename)]
    infos = [i for i in infos if not JUNK.search(i.filename)]
    if not infos:
        raise DataError(f"{name}: the archive is empty.")
    other = [i.filename for i in infos if not _is_image(i.filename) and not i.filename.lower().endswith(".csv")]
    if other:
        shown = ", ".join(repr(o) for o in other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
        raise DataError(f"{name}: holds {len(other)} file(s) that are neither images nor a CSV ({shown}); "
                        f"only {', '.join(UPLOAD_TYPES)} images and one labels CSV are accepted.")
    top = _strip_top([i.filename for i in infos])
    rel = {i.filename: i.filename[len(top):] for i in infos}
    csvs = [i.filename for i in infos if i.filename.lower().endswith(".csv")]
    images = [i for i in infos if _is_image(i.filename)]
    if not images:
        raise DataError(f"{name}: holds no images ({', '.join(UPLOAD_TYPES)}).")
    if csvs:
        chosen = _choose_csv(csvs, name)
        base = rel[chosen].rpartition("/")[0]
        base = f"{base}/" if base else ""
        folder = f"{base}train/" if any(rel[i.filename].startswith(f"{base}train/") for i in images) else base
        members, outside = [], []
        for info in images:
            path = rel[info.filename]
            (members.append(Member(info, path[len(folder):], None)) if path.startswith(folder)
             else outside.append(info.filename))
        if not members:
            raise DataError(f"{name}: no images sit beside {chosen!r} or in its train/ folder.")
        csv_info = next(i for i in infos if i.filename == chosen)
        return ZipPlan(members, "csv", read_member(zf, csv_info, name), ignored + outside)
    if top and all("/" not in rel[i.filename] for i in images):
        raise DataError(f"{name}: holds only one class folder ({top.rstrip('/')!r}); a classifier needs at least "
                        "2 classes, each in its own folder.")
    members, taken = [], set()
    for info in images:
        parts = rel[info.filename].split("/")
        if len(parts) != 2:
            where = "at the top level" if len(parts) == 1 else "in a nested folder"
            raise DataError(f"{name}: image {info.filename!r} is {where}; put the images in one folder per class "
                            "(cats/1.jpg, dogs/2.jpg) or add an Image,target CSV.")
        members.append(Member(info, f"{parts[0]}/{_unique(parts[1], taken)}", parts[0]))
    by_case: dict[str, str] = {}
    for label in sorted({m.label for m in members}):
        if label.lower() in by_case:
            raise DataError(f"{name}: class folders {by_case[label.lower()]!r} and {label!r} differ only in case; "
                            "labels are case-insensitive, so merge them.")
        by_case[label.lower()] = label
    if len(by_case) < 2:
        raise DataError(f"{name}: holds only one class folder ({next(iter(by_case))!r}); a classifier needs at "
                        "least 2 classes.")
    return ZipPlan(members, "folders", labels_csv([(m.target, m.label) for m in members]), ignored)


def labels_csv(rows: list[tuple[str, str]]) -> bytes:
    """An `Image,target` CSV (quoted where needed) for (image path, label) rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Image", "target"])
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


class DatasetZip:
    """A checked data-set archive, open for streaming its members; use as a context manager."""

    def __init__(self, source: ZipSource, name: str = "archive"):
        self.name = name
        self.zf = open_zip(source, name)
        try:
            self.plan = _plan(self.zf, name)
        except BaseException:
            self.zf.close()
            raise

    def files(self) -> Iterator[tuple[str, bytes]]:
        """(path under train/, bytes) of every member, one at a time."""
        for member in self.plan.members:
            yield member.target, read_member(self.zf, member.info, self.name)

    def close(self) -> None:
        """Close the archive."""
        self.zf.close()

    def __enter__(self) -> "DatasetZip":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_dataset_zip(source: ZipSource, name: str = "archive") -> DatasetZip:
    """Open and check a data-set zip (raises DataError naming the archive and the problem)."""
    return DatasetZip(source, name)

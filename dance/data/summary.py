"""Summaries of a data set's images for the Data set page: header facts, size statistics, a full decoding scan."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
from PIL import Image

from dance.data.cache import ImageCache
from dance.data.images import ALLOWED_FORMATS
from dance.data.splits import duplicate_sets, source_groups
from dance.errors import DanceError

HEADER_COLUMNS = ["width", "height", "mode", "format", "bytes", "error"]


def header_info(path: str | Path) -> dict:
    """Width, height, mode and format from an image's header (no pixel decoding); error text when unreadable."""
    path = Path(path)
    try:
        with Image.open(path, formats=ALLOWED_FORMATS) as img:
            return {"width": img.width, "height": img.height, "mode": img.mode, "format": img.format,
                    "bytes": path.stat().st_size, "error": None}
    except Exception as exc:  # noqa: BLE001 - any header failure is reported as a row, never raised
        return {"width": None, "height": None, "mode": None, "format": None,
                "bytes": path.stat().st_size if path.exists() else 0, "error": f"{type(exc).__name__}: {exc}"[:160]}


def header_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The valid label rows (image, label, path) with each image's header facts beside them."""
    info = pd.DataFrame([header_info(p) for p in frame["path"]], index=frame.index, columns=HEADER_COLUMNS)
    return pd.concat([frame[["image", "label", "path"]], info], axis=1)


@dataclass
class Scan:
    """Every image decoded once: the ones that fail (image, reason) and the near-duplicate sets among the others."""

    failures: pd.DataFrame
    duplicates: list[list[str]]  # paths, one list per source photo seen more than once


def scan_images(paths: Sequence[str], side: int, progress: Callable[[int, int], None] | None = None) -> Scan:
    """Decode every image as training does (same loader, cached at `side`) and group near-duplicates with the same
    perceptual hash cross-validation uses, so the sets shown are exactly the ones CV keeps on one side of a split."""
    cache = ImageCache(side=side)
    rows, kept, tensors = [], [], []
    for i, path in enumerate(paths):
        try:
            tensors.append(cache.get(path))
            kept.append(path)
        except DanceError as exc:
            rows.append({"image": Path(path).name, "reason": str(exc)})
        if progress:
            progress(i + 1, len(paths))
    sets = duplicate_sets(source_groups(tensors)) if tensors else []
    return Scan(pd.DataFrame(rows, columns=["image", "reason"]), [[kept[i] for i in s] for s in sets])


def size_summary(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(width/height quantiles, images per mode and format) over the rows of `header_table` whose header was read."""
    ok = table.dropna(subset=["width"])
    stats = ok[["width", "height"]].astype(float).describe().loc[["min", "25%", "50%", "75%", "max"]]
    modes = ok.groupby(["mode", "format"]).size().rename("images").reset_index()
    return stats.rename(index={"50%": "median"}).round(0).astype(int), modes

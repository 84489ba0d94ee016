"""The HackerEarth submission file (columns Image,target, one row per test.csv row, in its order); no Streamlit here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from dance.inference.predict import ImagePrediction

SUBMISSION_COLUMNS = ["Image", "target"]


def submission_frame(paths: Sequence[str | os.PathLike], preds: Sequence[ImagePrediction]) -> pd.DataFrame:
    """Image (file name as in test.csv) and target (the most likely class, empty when the image failed), in `paths` order.

    A 'not sure' answer still gets its most likely class: the competition scores every row.
    """
    if len(paths) != len(preds):
        raise ValueError(f"{len(paths)} test images but {len(preds)} predictions")
    return pd.DataFrame({"Image": [Path(p).name for p in paths], "target": [p.label or "" for p in preds]},
                        columns=SUBMISSION_COLUMNS)


def submission_csv(paths: Sequence[str | os.PathLike], preds: Sequence[ImagePrediction]) -> bytes:
    """The submission as UTF-8 CSV bytes (what the download button serves and `dance submit` writes)."""
    return submission_frame(paths, preds).to_csv(index=False).encode("utf-8")

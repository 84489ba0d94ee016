"""The Data set page's file summaries, computed in the backend: header facts, size statistics, decode failures."""

from __future__ import annotations

import pandas as pd
from PIL import Image

from dance.data.summary import header_table, scan_images, size_summary


def _files(tmp_path):
    Image.new("RGB", (40, 30), "red").save(tmp_path / "a.jpg")
    Image.new("L", (20, 50)).save(tmp_path / "b.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    names = ["a.jpg", "b.png", "broken.jpg"]
    return pd.DataFrame({"image": names, "label": ["x", "y", "x"], "path": [str(tmp_path / n) for n in names],
                         "extra": [1, 2, 3]})


def test_header_table_reads_sizes_without_decoding_and_names_unreadable_headers(tmp_path):
    table = header_table(_files(tmp_path))
    assert list(table.columns) == ["image", "label", "path", "width", "height", "mode", "format", "bytes", "error"]
    assert table.loc[0, ["width", "height", "mode", "format"]].tolist() == [40, 30, "RGB", "JPEG"]
    assert table.loc[1, ["width", "height", "mode"]].tolist() == [20, 50, "L"]
    assert table["error"].isna().tolist() == [True, True, False]
    assert table.loc[2, "bytes"] == len(b"\xff\xd8\xff\xe0 not really a jpeg")


def test_size_summary_and_the_decoding_scan(tmp_path):
    frame = _files(tmp_path)
    stats, modes = size_summary(header_table(frame))
    assert stats.loc["min", "width"] == 20 and stats.loc["max", "height"] == 50 and "median" in stats.index
    assert sorted(map(tuple, modes[["mode", "format", "images"]].values.tolist())) == [("L", "PNG", 1),
                                                                                        ("RGB", "JPEG", 1)]
    calls = []
    scan = scan_images(list(frame["path"]), 32, lambda done, total: calls.append((done, total)))
    failures = scan.failures
    assert failures["image"].tolist() == ["broken.jpg"] and "broken.jpg" in failures.loc[0, "reason"]
    assert calls == [(1, 3), (2, 3), (3, 3)] and scan.duplicates == []  # two different pictures
    twice = scan_images([frame.loc[0, "path"], frame.loc[0, "path"]], 32)
    assert twice.duplicates == [[frame.loc[0, "path"]] * 2] and scan_images([], 32).failures.empty

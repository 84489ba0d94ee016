"""Rule: the sidecar is validated against one schema (types, finite ranges, sizes; a size cap before parsing) and
every violation is one CheckpointError sentence, never a traceback, a NaN probability or a generic error page."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dance.errors import CheckpointError
from dance.inference import serving
from dance.models import checkpoint, sidecar

BASE = {"arch": "seed-cnn", "classes": ["a", "b", "c"], "image_size": 64, "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25]}

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30),
                    st.sampled_from([1e-300, -0.0, 5e-4, 1e300, True, None, "0.5"]))
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=5)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=8)


def _encode(meta: dict) -> bytes:
    return json.dumps(meta, allow_nan=True).encode()  # NaN/Infinity literals, as a hostile file may hold


@given(mean=st.lists(numbers, min_size=0, max_size=4), std=st.lists(numbers, min_size=0, max_size=4))
@settings(max_examples=300, deadline=None)
def test_normalisation_values_finite_and_in_range_or_one_sentence(mean, std):
    try:
        meta = sidecar.parse(_encode({**BASE, "mean": mean, "std": std}), "x.json")
    except CheckpointError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("x.json: ")
        return
    assert all(math.isfinite(v) and -10 <= v <= 10 for v in meta["mean"])
    assert all(math.isfinite(v) and 1e-3 <= v <= 10 for v in meta["std"])


@given(field=st.sampled_from(["metrics", "calibration", "split", "history", "config", "created", "versions",
                              "unsure_threshold", "image_size", "classes", "arch", "weights_sha256"]),
       value=json_values)
@settings(max_examples=300, deadline=None)
def test_any_value_of_any_field_is_accepted_or_one_sentence(field, value):
    try:
        meta = sidecar.parse(_encode({**BASE, field: value}), "x.json")
    except CheckpointError as exc:
        assert "\n" not in str(exc)
        return
    # what the code reads from an accepted sidecar has the type it expects
    assert isinstance(meta.get("metrics", {}).get("cv", {}), dict)
    assert isinstance(meta.get("calibration", {}), dict) and isinstance(meta.get("split", {}), dict)
    assert isinstance(meta["image_size"], int) and len(meta["classes"]) >= 2


@pytest.mark.parametrize("raw, message", [
    ("[" * 200_000 + "]" * 200_000, "not valid JSON|nests deeper"),
    ('{"a": ' * 50 + "1" + "}" * 50, "nests deeper than 16"),
    (json.dumps(BASE)[:-1] + ', "seed": ' + "9" * 5000 + "}",
     "integer of 5000 digits"),
    (json.dumps({**BASE})[:-1] + ', "unsure_threshold": NaN}', "NaN is not a number JSON allows"),
    (json.dumps({**BASE, "metrics": [1, 2]}), "'metrics' must be an object"),
    (json.dumps({**BASE, "metrics": {"cv": [1]}}), "'metrics.cv' must be an object"),
    (json.dumps({**BASE, "classes": [f"c{i}" for i in range(200_000)]}), "200000 names, over the limit of 1000"),
    (json.dumps({**BASE, "std": [1e-300, 1, 1]}), "'std' values must lie between"),
    (json.dumps({**BASE, "split": {"val_images": "abc"}}), "'split.val_images' must be a list"),
    (json.dumps({**BASE, "history": {"x": 1}}), "'history' must be a list"),
    (" " * (sidecar.MAX_SIDECAR_BYTES + 1), "over the 8 MB limit"),
])
def test_absurd_sidecars_are_one_sentence(raw, message):
    with pytest.raises(CheckpointError, match=message) as caught:
        sidecar.parse(raw.encode(), "x.json")
    assert "\n" not in str(caught.value)


def test_oversized_sidecar_file_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.json"
    with path.open("wb") as handle:
        handle.truncate(sidecar.MAX_SIDECAR_BYTES + 1)  # sparse: no real bytes written
    monkeypatch.setattr(sidecar, "parse", lambda *a: pytest.fail("parsed an oversized file"))
    with pytest.raises(CheckpointError, match="over the 8 MB limit"):
        checkpoint.read_sidecar(tmp_path / "big")


def test_nan_normalisation_never_reaches_predictions(tiny_checkpoint, tmp_path, synth_data):
    for suffix in (".json", ".safetensors"):
        shutil.copy(sidecar.suffixed(tiny_checkpoint, suffix), tmp_path / f"c{suffix}")
    meta = json.loads((tmp_path / "c.json").read_text())
    for bad in (float("nan"), float("inf"), 1e-300):
        (tmp_path / "c.json").write_text(json.dumps({**meta, "std": [bad, 0.5, 0.5]}, allow_nan=True))
        with pytest.raises(CheckpointError, match="'std' values must lie between|NaN|Infinity"):
            serving.load(tmp_path / "c", backend="torch")

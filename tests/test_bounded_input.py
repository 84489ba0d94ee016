"""Rule: every resize has a bounded output whatever the image's shape, so memory per image is bounded, and one bad
file never costs the others their answers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dance.data.images import MAX_ASPECT, resize_shorter
from dance.inference import serving

ROOT = Path(__file__).resolve().parents[1]


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


extent = st.one_of(st.integers(1, 3000), st.sampled_from([1, 2, 1_000_000, 3_000_000]))


@given(width=extent, height=extent, side=st.integers(16, 300))
@settings(max_examples=80, deadline=None)
def test_resize_output_is_bounded_for_any_shape(width, height, side):
    if width * height > 4_000_000:
        width = min(width, 3)  # keep each example's own image small: a strip, not a sheet
        height = min(height, 3)
    out = resize_shorter(Image.new("RGB", (width, height)), side).size
    assert max(out) <= max(side * MAX_ASPECT, 1) and min(out) <= max(side, 1)
    assert out[0] <= width and out[1] <= height  # never upscaled


@pytest.fixture(scope="module")
def tiny_predictor(tiny_checkpoint):
    return serving.load(tiny_checkpoint, backend="torch")


@given(width=extent, height=st.integers(1, 3))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_shape_is_predicted_with_a_finite_answer(tiny_predictor, width, height):
    pred = tiny_predictor.predict([("x.png", _png(width, height))])[0]
    assert pred.ok and abs(sum(pred.probs.values()) - 1) < 1e-6


PEAK = textwrap.dedent("""
    import json, resource, sys
    from dance.inference import serving
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # noqa: E731
    predictor = serving.load(sys.argv[1], backend="torch")
    predictor.predict([sys.argv[3]])  # warm: the first forward pass allocates the model's buffers
    before = peak()
    preds = predictor.predict([sys.argv[2], sys.argv[3]])
    print(json.dumps({"ok": [p.ok for p in preds], "growth_mb": peak() - before}))
""")


def test_thin_strip_costs_bounded_memory_and_the_batch_keeps_its_answers(tiny_checkpoint, tmp_path):
    strip = tmp_path / "strip.png"
    strip.write_bytes(_png(1, 2_000_000))  # ~8 KB on disk, 2 megapixels: within the pixel limit
    normal = tmp_path / "normal.png"
    normal.write_bytes(_png(90, 70))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", PEAK, str(tiny_checkpoint), str(strip), str(normal)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"] == [True, True]
    # before the cap: the 64 px model squashed the strip through a 64 x 2,000,000 float map (+1.5 GB)
    assert report["growth_mb"] < 400, report

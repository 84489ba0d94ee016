"""One Predictor shared by 8 threads at once (as the app shares it between sessions) answers as serial calls do."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from test_robustness import BAD, GOOD

from dance.data.images import load_image
from dance.inference import serving

THREADS = 8


def run_together(fn, count: int = THREADS):
    """Call fn(i) from `count` threads released at the same instant; returns results in order."""
    barrier = threading.Barrier(count)

    def task(i):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(task, range(count)))


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint):
    return serving.load(tiny_checkpoint, backend="torch")


@pytest.fixture(scope="module")
def uploads(synth_data):
    files = sorted((synth_data / "train").glob("*.jpg"))[::2] + sorted((synth_data / "test").glob("*.png"))
    items = [(p.name, p.read_bytes()) for p in files]
    items += [(n, GOOD[n][0]) for n in ("animated.gif", "cmyk.jpg", "deep16.png", "rotated-exif.jpg")]
    items += [(n, BAD[n][0]) for n in ("truncated.jpg", "page.jpg", "bomb-header.png")]
    return items


def as_table(preds):
    return {p.image: (p.error, p.probs) for p in preds}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        (err_a, probs_a), (err_b, probs_b) = a[name], b[name]
        assert err_a == err_b
        if err_a is None:
            assert list(probs_a) == list(probs_b)
            assert np.allclose(list(probs_a.values()), list(probs_b.values()), atol=1e-6, rtol=0), name


def test_eight_threads_match_serial(predictor, uploads):
    serial = as_table(predictor.predict(uploads))
    assert sum(err is None for err, _ in serial.values()) == len(uploads) - 3
    # each thread sends the uploads in a different order, so batches differ and cross-talk would show
    results = run_together(lambda i: as_table(predictor.predict(uploads[i:] + uploads[:i], batch_size=4 + i)))
    for table in results:
        assert_same(table, serial)


def test_threads_with_and_without_tta_do_not_disturb_each_other(predictor, uploads):
    uploads = uploads[:4] + uploads[-2:]
    plain, tta = as_table(predictor.predict(uploads)), as_table(predictor.predict(uploads, tta=True))
    results = run_together(lambda i: as_table(predictor.predict(uploads, tta=bool(i % 2))))
    for i, table in enumerate(results):
        assert_same(table, tta if i % 2 else plain)


def test_concurrent_decoding_gives_the_serial_pixels(uploads):
    good = [(n, d) for n, d in uploads if n not in BAD]
    serial = [np.asarray(load_image(d, name=n)) for n, d in good]

    def decode_all(i):
        order = good[i:] + good[:i]
        return {n: np.asarray(load_image(d, name=n)) for n, d in order}

    for table in run_together(decode_all):
        assert all(np.array_equal(table[n], arr) for (n, _), arr in zip(good, serial))


def test_huge_decodes_are_limited_to_two_at_once(monkeypatch):
    """Each decode above LARGE_PIXELS can take hundreds of MB, so concurrent uploads of huge images queue."""
    import time

    from dance.data import images

    active, peak, lock = [0], [0], threading.Lock()
    real = images._to_rgb

    def tracked(img):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return real(img)

    monkeypatch.setattr(images, "_to_rgb", tracked)
    monkeypatch.setattr(images, "LARGE_PIXELS", 100)  # make a 20x20 image count as huge
    data = GOOD["png-named.jpg"][0]
    results = run_together(lambda i: load_image(data, name=f"{i}.png"))
    assert peak[0] <= 2 and active[0] == 0
    assert all(np.array_equal(np.asarray(r), np.asarray(results[0])) for r in results)

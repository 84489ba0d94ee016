"""Rule: user-controlled text (class names, file names, CSV cells, error messages quoting them) reaches the page only
as plain text. The real app in Chromium, on a data set and a checkpoint whose class names are Markdown and HTML
pointing at a tracker server on 127.0.0.1, with hostile upload names: no <img> or <a> is made from them on any page,
and the tracker receives no request.
"""

from __future__ import annotations

import http.server
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import synthetic_image
from test_browser import chromium_tab, open_page, running_app, settle

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]


class Tracker(http.server.ThreadingHTTPServer):
    """Records the path of every request it receives (none is the pass condition)."""

    def __init__(self):
        self.hits: list[str] = []
        tracker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the stdlib's name
                tracker.hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def hostile_names(port: int) -> list[str]:
    """Class names that would become an image, a raw tag and a link if rendered as Markdown or HTML."""
    base = f"http://127.0.0.1:{port}"
    return [f"![t]({base}/md-image.png)", f"<img src={base}/html-image.png>", f"[a]({base}/md-link)"]


UPLOAD_NAMES = ["![u](up-image.png).png", "<img src=up-tag.png>.png", "[l](up-link).png"]


def _dataset(root: Path, classes: list[str]) -> Path:
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rows = ["Image,target"]
    for c, (kind, name) in enumerate(zip(["circle", "square", "stripes"], classes)):
        for i in range(6):
            synthetic_image(kind, seed=100 * c + i).save(root / "train" / f"{kind}{i}.jpg", quality=92)
            rows.append(f'{kind}{i}.jpg,"{name}"')
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    synthetic_image("circle", seed=999).save(root / "test" / "t0.png")
    (root / "test.csv").write_text("Image\nt0.png\n")
    return root


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory):
    tracker = Tracker()
    threading.Thread(target=tracker.serve_forever, daemon=True).start()
    classes = hostile_names(tracker.server_address[1])
    root = tmp_path_factory.mktemp("hostile")
    data = _dataset(root / "data", classes)
    weights = root / "weights"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "DANCE_DATA": str(data),
           "DANCE_WEIGHTS_DIR": str(weights), "DANCE_RUNS_DIR": str(root / "runs"), "DANCE_CACHE": str(root / "cache")}
    trained = subprocess.run(
        [sys.executable, "-m", "dance", "train", "--model", "seed-cnn", "--image-size", "64", "--epochs", "1",
         "--batch-size", "8", "--freeze-epochs", "0", "--val-fraction", "0.34", "--aug-preset", "none",
         "--output", str(weights / "default"), "--overwrite"], env=env, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr[-2000:]
    with (data / "train.csv").open("a") as csv:  # after training: a row naming a missing, hostile file, which the
        csv.write(f'"{classes[0]}.jpg","{classes[1]}"\n')  # Data set page echoes among the rows failing validation
    with running_app(env, "streamlit-markup.log") as url:
        yield url, tracker, classes
    tracker.shutdown()


@pytest.fixture(scope="module")
def page(hostile_app):
    """A Chromium page (as in test_browser.py)."""
    with chromium_tab() as tab:
        yield tab


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    synthetic_image("circle", seed=seed).save(buffer, "PNG")
    return buffer.getvalue()


def _made_from_hostile_text(tab) -> list[str]:
    """<img> and <a> elements whose address comes from a hostile name (the app's own images are data/blob URLs)."""
    # (a heading's own "#slug" anchor, which Streamlit adds to every heading, is not a link out)
    return tab.evaluate("""() => [
        ...Array.from(document.querySelectorAll('img')).map(e => e.getAttribute('src') || ''),
        ...Array.from(document.querySelectorAll('a')).map(e => e.getAttribute('href') || ''),
    ].filter(u => !u.startsWith('#') && /md-image|html-image|md-link|up-image|up-tag|up-link/.test(u))""")


def test_hostile_class_and_file_names_render_as_text_on_every_page(hostile_app, page):
    url, tracker, classes = hostile_app
    # Predict: hostile upload names, one of them not an image (its error quotes the name)
    open_page(page, url, "", "Predict")
    files = [{"name": name, "mimeType": "image/png", "buffer": _png(i)} for i, name in enumerate(UPLOAD_NAMES[:2])]
    files.append({"name": UPLOAD_NAMES[2], "mimeType": "image/png", "buffer": b"not an image"})
    page.locator("[data-testid=stFileUploader] input[type=file]").first.set_input_files(files)
    page.locator("[data-testid=stMain] h3").first.wait_for()
    settle(page)
    main = page.locator("[data-testid=stMain]")
    shown = main.inner_text()
    assert any(name in shown for name in classes) or "Not sure" in shown  # the label, as literal text
    assert UPLOAD_NAMES[0] in shown and UPLOAD_NAMES[2] in shown  # the caption and the error, literally
    found = {"predict": _made_from_hostile_text(page)}
    page.locator("[data-testid=stMain]").get_by_text("Show Grad-CAM", exact=True).click()
    page.get_by_text("Grad-CAM: where the model sees ").first.wait_for()
    settle(page)
    found["predict+cam"] = _made_from_hostile_text(page)
    for slug, title in [("dataset", "Data set"), ("evaluate", "Evaluate"), ("train", "Train"),
                        ("augment", "Augmentation preview"), ("label_issues", "Label issues")]:
        open_page(page, url, slug, title)
        found[slug] = _made_from_hostile_text(page)
        if slug == "dataset":
            text = page.locator("[data-testid=stMain]").inner_text()
            assert sum(name in text for name in classes) >= 2  # pills and captions show the names literally
    page.wait_for_timeout(500)
    assert all(not v for v in found.values()), found
    assert tracker.hits == [], tracker.hits

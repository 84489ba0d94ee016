"""The real app in headless Chromium: every page opens, an upload is classified (and explained by Grad-CAM), a matrix
cell click opens its gallery, the Label issues page opens with or without a cross-validation run.

Starts the app as `make run` does (`python -m dance.ui.serve`) on a free port and drives Debian's chromium
through Playwright (never `playwright install`). Screenshots of each page go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from bench.browser import chromium_path, free_port, launch_chromium, start_app, stop_process, wait_healthy
from dance import paths
from dance.data.labels import load_unlabelled
from dance.inference import serving
from dance.paths import find_data_dir

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
PAGES = [("", "Predict"), ("evaluate", "Evaluate"), ("augment", "Augmentation preview"), ("train", "Train"),
         ("dataset", "Data set"), ("label_issues", "Label issues")]  # each test opens its pages once; together, all six
SETTLE_MS = 120_000


def _weights_dir() -> Path:
    """Where the app under test reads checkpoints (the shipped weights/ unless DANCE_WEIGHTS_DIR says otherwise)."""
    return Path(os.environ.get("DANCE_WEIGHTS_DIR") or paths.WEIGHTS_DIR)


@contextmanager
def running_app(env: dict[str, str] | None = None, log_name: str = "streamlit.log") -> Iterator[str]:
    """The app (`python -m dance.ui.serve`) on a free port with `env` added to the environment; yields its URL."""
    port = free_port()
    log = open(ARTIFACTS.mkdir(parents=True, exist_ok=True) or ARTIFACTS / log_name, "wb")
    proc = start_app(port, env, log)
    try:
        try:
            wait_healthy(proc, port, 60)
        except RuntimeError:
            raise RuntimeError(f"streamlit did not start; see {ARTIFACTS / log_name}") from None
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)
        log.close()


@pytest.fixture(scope="module")
def server():
    """The app on the project's own weights and data; yields its base URL and stops it afterwards."""
    with running_app() as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    """A Chromium page (1400 px wide) from Debian's chromium binary."""
    with chromium_tab() as tab:
        yield tab


@contextmanager
def chromium_tab() -> Iterator:
    """A Playwright page in Debian's chromium (skips the test loudly when chromium is missing)."""
    if chromium_path() is None:
        pytest.skip("BROWSER TESTS NOT RUN: no `chromium` on PATH. Install Debian's package "
                    "(`apt-get install chromium`, done by `make test` when run as root).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(SETTLE_MS)
        yield tab
        browser.close()


def settle(tab) -> None:
    """Wait until the script run is over, no skeleton is left and every plotly chart has drawn."""
    tab.wait_for_timeout(400)
    tab.wait_for_function("() => document.querySelector('[data-testid=stApp]')"
                          "?.getAttribute('data-test-script-state') === 'notRunning'")
    tab.wait_for_function("() => document.querySelectorAll('[data-testid=stSkeleton]').length === 0 && "
                          "Array.from(document.querySelectorAll('[data-testid=stPlotlyChart]'))"
                          ".every(e => e.querySelector('.main-svg'))")
    tab.wait_for_timeout(300)


def screenshot(tab, name: str) -> Path:
    """Screenshot of the whole page at the tab's width (the viewport grows to the content, since Streamlit scrolls
    inside, then shrinks back)."""
    size = tab.viewport_size
    height = tab.evaluate("() => Math.max(...Array.from(document.querySelectorAll('[data-testid=stMain], "
                          "[data-testid=stAppViewContainer], section')).map(e => e.scrollHeight))")
    tab.set_viewport_size({"width": size["width"], "height": min(9000, max(size["height"], int(height)))})
    tab.wait_for_timeout(600)
    path = ARTIFACTS / f"{name}.png"
    tab.screenshot(path=str(path))
    tab.set_viewport_size(size)
    return path


def open_page(tab, base: str, slug: str, title: str) -> None:
    """Navigate to a page and wait for it to finish."""
    tab.goto(f"{base}/{slug}")
    tab.get_by_role("heading", name=title, exact=True).first.wait_for()
    settle(tab)
    assert tab.locator("[data-testid=stException]").count() == 0, tab.locator("[data-testid=stException]").all_inner_texts()


def test_augment_train_and_data_set_pages_open(server, page):
    for slug, title in PAGES[2:5]:
        open_page(page, server, slug, title)
        assert page.locator("[data-testid=stSidebarNav]").get_by_text(title, exact=True).count() == 1
        screenshot(page, slug)
    assert page.locator("[data-testid=stImage]").count() >= 8  # the data set page's sample grid


def test_upload_on_predict_shows_the_models_label(server, page):
    image = load_unlabelled(find_data_dir(None))[0]
    expected = serving.load(_weights_dir() / "default").predict([image])[0]
    open_page(page, server, "", "Predict")
    screenshot(page, "predict")
    page.locator("[data-testid=stFileUploader] input[type=file]").first.set_input_files(str(image))  # photos
    heading = page.locator("[data-testid=stMain] h3").first
    heading.wait_for()
    settle(page)
    shown = heading.inner_text().strip()
    if expected.unsure:
        assert shown == f"Not sure — top-2: {expected.ranked[0][0]} or {expected.ranked[1][0]}"
    else:
        assert shown == expected.label
        assert page.get_by_text(f"confidence {expected.confidence:.1%}", exact=True).count() == 1
    screenshot(page, "predict-upload")
    images = page.locator("[data-testid=stMain] [data-testid=stImage]").count()
    page.locator("[data-testid=stMain]").get_by_text("Show Grad-CAM", exact=True).click()  # in the page, not the sidebar
    overlay = page.get_by_text(f"Grad-CAM: where the model sees {expected.label} ({expected.confidence:.1%})")
    overlay.first.wait_for()
    settle(page)
    assert page.locator("[data-testid=stMain] [data-testid=stImage]").count() == images + 1
    screenshot(page, "predict-gradcam")


def test_video_upload_on_predict_shows_the_clips_answer_and_timeline(server, page, tmp_path):
    from test_video import write_photo_video

    photos = load_unlabelled(find_data_dir(None))[:2]
    clip = write_photo_video(tmp_path / "recital.mp4", [(photos[0], 4), (photos[1], 4)])
    open_page(page, server, "", "Predict")
    page.get_by_text("Video: which dance forms appear when").click()
    page.locator("[data-testid=stExpander] [data-testid=stFileUploader] input[type=file]").set_input_files(str(clip))
    heading = page.locator("[data-testid=stMain] h3", has_text="recital.mp4")
    heading.wait_for()
    settle(page)
    assert heading.inner_text().startswith("recital.mp4: ")
    assert page.get_by_text("Segments:").count() == 1 and page.get_by_text("0:00–").count() >= 1
    assert page.locator("[data-testid=stPlotlyChart]").count() == 1  # the timeline (no photo uploaded)
    assert page.get_by_text("most confident frames").count() >= 1
    assert page.locator("[data-testid=stException]").count() == 0
    screenshot(page, "predict-video")


def test_label_issues_page_opens(server, page):
    open_page(page, server, "label_issues", "Label issues")
    assert page.locator("[data-testid=stSidebarNav]").get_by_text("Label issues", exact=True).count() == 1
    main = page.locator("[data-testid=stMain]")
    # Without a CV run the page says how to make one; with one it shows the first disputed image or says none are.
    assert (main.get_by_text("python -m dance cv").count() + main.get_by_text("look mislabelled").count()
            + main.get_by_text("No likely label issues").count()) >= 1
    screenshot(page, "label_issues")


def test_clicking_a_confusion_matrix_cell_opens_its_gallery(server, page):
    open_page(page, server, "evaluate", "Evaluate")
    screenshot(page, "evaluate")
    # Pick an off-diagonal cell with images (else the fullest cell) and click its centre.
    target = page.evaluate("""() => {
        const gd = document.querySelector('[data-testid=stPlotlyChart] .js-plotly-plot');
        const cells = gd.data[0].customdata;
        const off = cells.filter(c => c[0] !== c[1] && c[2] > 0);
        const pick = off.length ? off[0] : cells.reduce((a, b) => (b[2] > a[2] ? b : a));
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
        gd.scrollIntoView();
        return {true: pick[0], pred: pick[1], count: pick[2],
                dx: xa._offset + xa.d2p(pick[1]), dy: ya._offset + ya.d2p(pick[0])};
    }""")
    box = page.locator("[data-testid=stPlotlyChart] .js-plotly-plot").first.bounding_box()
    page.mouse.click(box["x"] + target["dx"], box["y"] + target["dy"])
    expected = f"true {target['true']}, predicted {target['pred']}"
    page.get_by_text(expected).first.wait_for()
    settle(page)
    summary = page.locator("[data-testid=stMarkdownContainer]", has_text=expected).first.inner_text()
    assert summary.startswith(f"{int(target['count'])} ")
    captions = page.locator("[data-testid=stImageCaption]").all_inner_texts()
    wanted = f"true {target['true']} · predicted {target['pred']}"
    assert sum(wanted in c for c in captions[: int(target["count"])]) == min(int(target["count"]), 12)
    screenshot(page, "evaluate-cell")

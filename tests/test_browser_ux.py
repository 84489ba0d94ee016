"""The app as a new user meets it, in headless Chromium (issue #15): honest answers from a freshly trained model,
uploads that are easy to manage, Predict at phone width, the served model's CV run, near-duplicates, dark theme and
nothing fetched from outside.

One app start for the whole module (`python -m dance.ui.serve`), on a temporary weights folder holding the shipped
checkpoints (linked) and their CV runs (copied, `large`'s made newer, as in a fresh checkout), a temporary runs folder
and ONNX cache. Screenshots go to tests/artifacts/ux-*.png (git-ignored).
"""

from __future__ import annotations

import base64
import csv
import io
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image
from test_browser import SETTLE_MS, open_page, running_app, screenshot, settle

from bench.browser import chromium_path, launch_chromium
from dance import paths
from dance.paths import find_data_dir

pytestmark = pytest.mark.browser

WIDE, PHONE = {"width": 1400, "height": 1000}, {"width": 390, "height": 844}
TRAINING_MS = 600_000  # decoding and training on a shared 2-core CPU can take minutes
LONG_NAME = "akula__a_long_descriptive_photo_name_from_a_phone_612x612.jpg"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app on a free port over a temp weights folder; yields (base URL, weights folder)."""
    root = tmp_path_factory.mktemp("ux")
    weights = root / "weights"
    weights.mkdir()
    for name in ("default", "large"):
        for suffix in (".json", ".safetensors"):
            (weights / f"{name}{suffix}").symlink_to(paths.WEIGHTS_DIR / f"{name}{suffix}")
    shutil.copytree(paths.WEIGHTS_DIR / "cv", weights / "cv")
    newer = time.time() + 5
    os.utime(weights / "cv" / "large" / "oof.csv", (newer, newer))  # file time would open large's run
    env = {"DANCE_WEIGHTS_DIR": str(weights), "DANCE_RUNS_DIR": str(root / "runs"), "DANCE_CACHE": str(root / "cache")}
    with running_app(env, "streamlit-ux.log") as url:
        yield url, weights


@pytest.fixture(scope="module")
def browser(app):
    """Debian's chromium through Playwright; every request any page makes is recorded in `browser.requests`."""
    if chromium_path() is None:
        pytest.skip("BROWSER TESTS NOT RUN: no `chromium` on PATH (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        handle = launch_chromium(pw)
        handle.requests = []
        yield handle
        handle.close()


def new_tab(browser, viewport=WIDE, **options):
    """A fresh browser context (its own Streamlit session) and page, its requests recorded."""
    context = browser.new_context(viewport=viewport, accept_downloads=True, **options)
    context.on("request", lambda request: browser.requests.append(request.url))
    tab = context.new_page()
    tab.set_default_timeout(SETTLE_MS)
    return tab


def shot(tab, name: str) -> None:
    """Screenshot of the whole page at the tab's width, as tests/artifacts/ux-<name>.png."""
    screenshot(tab, f"ux-{name}")


def main(tab):
    """The page's main area (not the sidebar)."""
    return tab.locator("[data-testid=stMain]")


def cards(tab):
    """The answer headings of the result cards (not section headings such as 'Results: …' or the video section)."""
    return main(tab).locator("h3").filter(has_not_text=re.compile(r"^(Results|Video|Test set)"))


def chosen(tab) -> str:
    """The value shown by the page's first selectbox."""
    return main(tab).locator("[data-testid=stSelectbox] input").first.input_value()


def upload(tab, files: list[Path]) -> None:
    """Hand files to the Predict uploader and wait for the answers."""
    tab.locator("[data-testid=stFileUploader] input[type=file]").first.set_input_files([str(f) for f in files])
    tab.wait_for_timeout(500)
    settle(tab)


def train_images(count: int) -> list[Path]:
    """The first `count` labelled photos of the real data set."""
    return sorted((find_data_dir(None) / "train").glob("*.jpg"), key=lambda p: int(p.stem))[:count]


# ---------------------------------------------------------------------------------------------- train -> predict


def test_uploads_are_easy_to_manage_and_every_number_agrees(app, browser, tmp_path):
    """Items 5, 6, 7, 9 and the labelled samples: full names, GIF accepted, one clean error box above the answers,
    Grad-CAM quoting the headline's number, the CSV's columns, Clear all, paste, sample answers with their truth."""
    url, _ = app
    photos = train_images(3)
    long = tmp_path / LONG_NAME
    shutil.copy(photos[0], long)
    gif = tmp_path / "pose.gif"
    Image.open(photos[1]).convert("RGB").save(gif)
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"this is a text file with a .jpg name")
    tab = new_tab(browser)
    open_page(tab, url, "", "Predict")
    assert main(tab).get_by_text("Drag photos onto the box, paste one with Ctrl+V").is_visible()  # before any drag
    upload(tab, [long, gif, bad])
    names = tab.locator("[data-testid=stFileChip]")
    listed = main(tab).get_by_text(re.compile(r"^Uploaded \(3\): ")).first.inner_text()
    assert listed == f"Uploaded (3): {LONG_NAME} · pose.gif · notes.jpg"  # whole names (the chips cut them)
    assert tab.locator("[data-testid=stFileChipIconError]").count() == 0  # the uploader takes GIF (and TIFF)
    error = main(tab).locator("[data-testid=stAlertContentError]").first
    text = error.inner_text()
    assert "1 of 3 file(s) could not be read" in text and "None" not in text
    assert "notes.jpg: not a supported image (expected JPEG, PNG, WebP, BMP, GIF or TIFF)." in text  # whole, one list
    assert error.bounding_box()["y"] < cards(tab).first.bounding_box()["y"]  # grouped above the cards
    assert cards(tab).count() == 2
    shot(tab, "predict-uploads")

    caption = main(tab).get_by_text(re.compile(r"^confidence \d+\.\d%$")).first.inner_text()
    main(tab).get_by_text("Show Grad-CAM", exact=True).click()
    main(tab).get_by_text(re.compile(r"^Grad-CAM: where the model sees ")).first.wait_for()
    settle(tab)
    overlay = main(tab).get_by_text(re.compile(r"^Grad-CAM: where the model sees ")).first.inner_text()
    assert overlay.endswith(f"({caption.removeprefix('confidence ')})")  # one number per answer
    shot(tab, "predict-gradcam")

    with tab.expect_download() as download:
        main(tab).get_by_role("button", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert list(rows[0])[:6] == ["image", "label", "confidence", "unsure", "second_label", "error"]
    assert [r["image"] for r in rows] == [LONG_NAME, "pose.gif", "notes.jpg"]
    assert rows[2]["label"] == "" and rows[2]["error"].startswith("notes.jpg: not a supported image")
    assert all(r["unsure"] in ("True", "False") and r["second_label"] for r in rows[:2])

    main(tab).get_by_role("button", name="Clear all (3)").click()  # one click, not three
    settle(tab)
    assert names.count() == 0 and cards(tab).count() == 0

    png = io.BytesIO()
    Image.open(photos[2]).convert("RGB").resize((160, 120)).save(png, format="PNG")
    tab.evaluate("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], 'image.png', {type: 'image/png'}));
        document.body.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true}));
    }""", base64.b64encode(png.getvalue()).decode())
    main(tab).get_by_text(re.compile(r"^Uploaded \(1\): pasted-\d{8}-\d{6}-1\.png$")).first.wait_for()
    settle(tab)
    assert cards(tab).count() == 1  # the pasted image is classified like an upload

    main(tab).get_by_role("button", name="Try sample images").click()
    settle(tab)
    verdicts = main(tab).get_by_text(re.compile(r"^True label: \w+")).all_inner_texts()
    assert len(verdicts) == 4 and all(re.search(r"(— right|— wrong|\(one of the two\)|\(neither\))$", v)
                                      for v in verdicts)
    shot(tab, "predict-samples")


# ---------------------------------------------------------------------------------------------- predict, phone


def test_predict_at_phone_width_answers_first_with_its_controls_in_the_page(app, browser):
    """Item 4: at 390 px the answer leads each card, the table fits, and the model, TTA and Grad-CAM controls are in
    the page itself (the sidebar is collapsed)."""
    url, _ = app
    tab = new_tab(browser, viewport=PHONE)
    open_page(tab, url, "", "Predict")
    for control in ("Test-time augmentation", "Show Grad-CAM"):
        assert main(tab).get_by_text(control, exact=True).is_visible()
    picker = main(tab).locator("[data-testid=stSelectbox]").first
    assert picker.is_visible() and picker.bounding_box()["x"] + picker.bounding_box()["width"] <= PHONE["width"]
    upload(tab, train_images(2))
    heading, photo = main(tab).locator("h3").first, main(tab).locator("[data-testid=stImage]").first
    assert heading.bounding_box()["y"] < photo.bounding_box()["y"]  # the answer before the photo
    table = main(tab).locator("[data-testid=stDataFrame]").first
    assert table.bounding_box()["width"] <= PHONE["width"]  # answer and confidence lead its columns (test_app)
    shot(tab, "predict-phone")


# ---------------------------------------------------------------------------------------------- evaluate ...


def test_evaluate_label_issues_and_data_set_tell_one_story(app, browser):
    """Items 3, 2, 10 and the reliability bins: the served model's CV run (not the newest file), hold-out explained
    with a way to the CV run, Grad-CAM captions that say which model drew them, keyboard review, near-duplicates."""
    url, _ = app
    tab = new_tab(browser)
    open_page(tab, url, "evaluate", "Evaluate")
    assert chosen(tab) == "default (oof.csv)"  # although large's run is newer on disk
    bins = tab.evaluate("() => Array.from(document.querySelectorAll('[data-testid=stPlotlyChart] .js-plotly-plot'))"
                        ".flatMap(gd => gd.data).filter(t => t.name && t.name.startsWith('calibrated'))"
                        ".map(t => t.text)")
    assert bins and all(label.startswith("n=") for label in bins[0])
    main(tab).get_by_text("Hold-out of the checkpoint", exact=True).click()
    settle(tab)
    info = main(tab).locator("[data-testid=stAlertContentInfo]").first.inner_text()
    assert "default was trained on every labelled image" in info and "--split" not in info
    shot(tab, "evaluate-no-holdout")
    main(tab).get_by_role("button", name="Show default's cross-validation run").click()
    settle(tab)
    assert chosen(tab) == "default (oof.csv)"

    open_page(tab, url, "label_issues", "Label issues")
    assert chosen(tab) == "default (oof.csv)"
    captions = main(tab).locator("[data-testid=stImageCaption]").all_inner_texts()
    cams = [c for c in captions if "Grad-CAM" in c or "where default sees" in c]
    assert len(cams) == 2 and all("default trained on this image" in c and "%" not in c.split("—")[0] for c in cams)
    position = main(tab).get_by_text(re.compile(r"^Image \d+ of \d+"))
    assert position.first.inner_text().startswith("Image 1 of")
    shot(tab, "label-issues")
    tab.keyboard.press("k")  # keep
    main(tab).get_by_text(re.compile(r"^Image 2 of")).first.wait_for()
    tab.keyboard.press("ArrowLeft")
    main(tab).get_by_text(re.compile(r"^Image 1 of \d+: .* decided: keep")).first.wait_for()

    open_page(tab, url, "dataset", "Data set")
    main(tab).get_by_role("button", name="Decode every image and find near-duplicates").click()
    main(tab).get_by_text("Near-duplicate photos", exact=True).wait_for(timeout=TRAINING_MS)
    settle(tab)
    captions = main(tab).locator("[data-testid=stImageCaption]").all_inner_texts()
    assert any(c.startswith("155.jpg · ") for c in captions) and any(c.startswith("164.jpg · ") for c in captions)
    assert main(tab).get_by_text(re.compile(r"^\d+ photo\(s\) appear more than once")).count() == 1
    shot(tab, "dataset-duplicates")


# ---------------------------------------------------------------------------------------------- theme, offline


def test_dark_system_setting_is_followed_and_nothing_is_fetched_from_outside(app, browser):
    """The app follows a dark system setting; over this whole module no request left 127.0.0.1 (favicon, fonts)."""
    url, _ = app
    tab = new_tab(browser, color_scheme="dark")
    open_page(tab, url, "", "Predict")
    background = tab.evaluate("() => getComputedStyle(document.querySelector('[data-testid=stApp]')).backgroundColor")
    red, green, blue = map(int, re.findall(r"\d+", background)[:3])
    assert red + green + blue < 150, background  # the dark palette, not the light one
    shot(tab, "predict-dark")
    outside = sorted({u for u in browser.requests if not u.startswith(("http://127.0.0.1", "data:", "blob:"))})
    assert not outside, outside

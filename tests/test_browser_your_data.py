"""The Your data page in headless Chromium: upload a zip of two synthetic classes, train in quick mode, read the
result card, open the model on Predict and classify a new image with it. The app runs on temp weights, user-data
and cache folders (the shipped default copied in), so nothing is written into the project."""

from __future__ import annotations

import shutil

import pytest
from test_app_your_data import KINDS, jpeg, two_class_zip
from test_browser import page, running_app, screenshot, settle  # noqa: F401 - `page` is the shared browser fixture

from dance import paths

pytestmark = pytest.mark.browser
TRAIN_MS = 600_000  # the shared 2-core machine under heavy load; a quiet one trains this set in seconds


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on temp folders (weights holds a copy of the shipped default); overrides test_browser's server."""
    root = tmp_path_factory.mktemp("yourdata-app")
    (root / "weights").mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(paths.WEIGHTS_DIR / f"default{suffix}", root / "weights" / f"default{suffix}")
    env = {"DANCE_WEIGHTS_DIR": str(root / "weights"), "DANCE_USER_DATA": str(root / "data"),
           "DANCE_RUNS_DIR": str(root / "runs"), "DANCE_CACHE": str(root / "cache")}
    with running_app(env, "streamlit-your-data.log") as url:
        yield url


def test_upload_a_zip_train_quick_and_predict_with_it(server, request, tmp_path):
    tab = request.getfixturevalue("page")
    archive_file = tmp_path / "shapes.zip"
    archive_file.write_bytes(two_class_zip(per_class=8))
    tab.goto(f"{server}/your_data")
    tab.get_by_role("heading", name="Your data", exact=True).first.wait_for()
    settle(tab)
    tab.locator("[data-testid=stFileUploader] input[type=file]").first.set_input_files(str(archive_file))
    settle(tab)
    tab.get_by_role("textbox", name="Name of the new set").fill("shapes")
    tab.get_by_role("textbox", name="Name of the new set").press("Enter")
    settle(tab)
    tab.get_by_role("button", name="Import the zip").click()
    tab.get_by_text("Imported shapes.zip as").wait_for()
    settle(tab)
    assert tab.locator("[data-testid=stMetricValue]").first.inner_text() == "16"
    screenshot(tab, "your-data-imported")
    tab.get_by_role("textbox", name="Save the model as").fill("shapes-quick")
    tab.get_by_role("textbox", name="Save the model as").press("Enter")
    settle(tab)
    tab.get_by_role("button", name="Start training").click()
    try:
        tab.get_by_text("Trained shapes-quick in").wait_for(timeout=TRAIN_MS)
    finally:
        screenshot(tab, "your-data-training")
    settle(tab)
    assert tab.get_by_text(f"Classes: {', '.join(KINDS)}").count() == 1
    screenshot(tab, "your-data-trained")
    tab.get_by_role("button", name="Try it on Predict").click()
    tab.get_by_role("heading", name="Predict", exact=True).first.wait_for()
    settle(tab)
    new_image = tmp_path / "new.jpg"
    new_image.write_bytes(jpeg("stripes", 4242))
    tab.locator("[data-testid=stFileUploader] input[type=file]").first.set_input_files(str(new_image))
    heading = tab.locator("[data-testid=stMain] h3").first
    heading.wait_for()
    settle(tab)
    assert heading.inner_text().strip() in ("stripes", "Not sure — top-2: stripes or circle")
    screenshot(tab, "your-data-predict")

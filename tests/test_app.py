"""The Streamlit app under streamlit.testing.v1.AppTest: every page, uploads, the cell gallery, augmentation, training."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from PIL import Image

from conftest import SYNTH_CLASSES, make_dataset, synthetic_image
from dance import checkpoint
from dance.evaluate import evaluate_checkpoint
from dance.predict import ImagePrediction, Predictor

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 120
RESULT_COLUMNS = ["thumbnail", "image", "label", "confidence", "error"]


@pytest.fixture()
def weights(tiny_checkpoint, tmp_path, monkeypatch, synth_data) -> Path:
    """A temp weights folder whose default is the tiny checkpoint; the app reads it via DANCE_WEIGHTS_DIR."""
    folder = tmp_path / "weights"
    folder.mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(tiny_checkpoint.with_suffix(suffix), folder / f"default{suffix}")
    monkeypatch.setenv("DANCE_WEIGHTS_DIR", str(folder))
    monkeypatch.setenv("DANCE_DATA", str(synth_data))
    return folder


def app_at(page: str):
    """AppTest of app.py switched to one page (dance/ui/pages/<page>.py) and run."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    if page != "predict":
        at.switch_page(f"dance/ui/pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def png_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    """Encode an image."""
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


def metric(at, label: str) -> str:
    """The value of the st.metric with `label`."""
    return next(m.value for m in at.metric if m.label == label)


def frame_with(at, columns: list[str]):
    """The last st.dataframe whose columns are exactly `columns`."""
    return [d.value for d in at.dataframe if list(d.value.columns) == columns][-1]


def captions(at) -> list[str]:
    """Every image caption on the page, in order."""
    return [c for element in at.image for c in element.captions]


# ---------------------------------------------------------------------------------------------- every page


def test_every_page_renders_its_content(weights, synth_data):
    at = app_at("predict")
    assert [t.value for t in at.title] == ["Predict"]
    assert any(e.label == "Model card: default" for e in at.expander)
    assert at.file_uploader[0].accept_multiple_files
    assert set(at.file_uploader[0].allowed_type) >= {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
    assert sorted(t.label for t in at.toggle) == ["Test-time augmentation", "Use webcam"]
    assert not at.get("camera_input")  # the browser only asks for the camera after the toggle

    holdout, _ = evaluate_checkpoint(weights / "default", synth_data, "holdout")
    for page, title in [("evaluate", "Evaluate"), ("augment", "Augmentation preview"), ("train", "Train"),
                        ("dataset", "Data set")]:
        at.switch_page(f"dance/ui/pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
        assert [t.value for t in at.title] == [title]
        assert not at.error, (page, [e.value for e in at.error])
        if page == "evaluate":
            assert metric(at, "Images") == str(len(holdout.targets))
            assert metric(at, "Accuracy") == f"{holdout.metrics()['accuracy']:.1%}"
        elif page == "dataset":
            assert metric(at, "Labelled images") == str(8 * len(SYNTH_CLASSES))
            assert metric(at, "Invalid CSV rows") == "0"
        elif page == "train":
            assert at.text_input(key="train_data").value == str(synth_data)


# ---------------------------------------------------------------------------------------------- predict


def test_upload_predicts_and_bad_files_get_their_own_error(weights):
    good = png_bytes(synthetic_image("square", seed=4242))
    jpeg = png_bytes(synthetic_image("stripes", seed=77), "JPEG")
    at = app_at("predict")
    uploader = at.file_uploader[0]
    uploader.upload("good.png", good, "image/png")
    uploader.upload("not-an-image.jpg", b"this is text, not pixels", "image/jpeg")
    uploader.upload("empty.png", b"", "image/png")
    uploader.upload("truncated.jpg", jpeg[: len(jpeg) // 3], "image/jpeg")
    at.run()
    assert not at.exception, at.exception

    expected = Predictor(checkpoint.load(weights / "default")).predict([("good.png", good)])[0]
    errors = [e.value for e in at.error]
    assert len(errors) == 3
    assert errors[0].startswith("not-an-image.jpg:")
    assert errors[1].startswith("empty.png:") and "0 bytes" in errors[1]
    assert errors[2].startswith("truncated.jpg:")
    table = frame_with(at, RESULT_COLUMNS)
    assert list(table["image"]) == ["good.png", "not-an-image.jpg", "empty.png", "truncated.jpg"]
    assert table.loc[0, "label"] == expected.label
    assert table.loc[0, "confidence"] == pytest.approx(expected.confidence)
    assert table.loc[0, "thumbnail"].startswith("data:image/jpeg;base64,")
    assert table["label"].isna().tolist() == [False, True, True, True]
    headings = [m.value for m in at.markdown if m.value.startswith("### ")]
    assert headings == [f"### {expected.label}"]


def test_tta_toggle_changes_nothing_but_the_probabilities(weights):
    img = png_bytes(synthetic_image("circle", seed=5))
    at = app_at("predict")
    at.file_uploader[0].upload("a.png", img, "image/png")
    at.toggle(key="predict_tta").set_value(True)
    at.run()
    expected = Predictor(checkpoint.load(weights / "default")).predict([("a.png", img)], tta=True)[0]
    assert f"confidence {expected.confidence:.1%}" in [c.value for c in at.caption]


def test_unsure_answer_reads_not_sure_with_top_two():
    from dance.ui.pages.predict import headline

    pred = ImagePrediction("x.jpg", {"kathak": 0.4, "odissi": 0.35, "manipuri": 0.25}, threshold=0.5)
    assert headline(pred) == "Not sure — top-2: kathak or odissi"
    sure = ImagePrediction("y.jpg", {"kathak": 0.9, "odissi": 0.1}, threshold=0.5)
    assert headline(sure) == "kathak (90.0%)"


def test_broken_checkpoint_falls_back_to_default_with_a_warning(weights):
    (weights / "broken.json").write_text((weights / "default.json").read_text())
    (weights / "broken.safetensors").write_bytes(b"\x00garbage")
    at = app_at("predict")
    at.selectbox(key="predict_model").set_value("broken").run()
    assert not at.exception, at.exception
    assert len(at.warning) == 1 and "Using default instead" in at.warning[0].value
    assert any(e.label == "Model card: default" for e in at.expander)


def test_samples_from_the_test_folder_are_classified(weights):
    at = app_at("predict")
    at.button(key="predict_sample_btn").click().run()
    assert not at.exception, at.exception
    table = frame_with(at, RESULT_COLUMNS)
    assert len(table) == 4 and table["image"].str.startswith("sample t").all()  # synth test/ has t0..t3.png
    assert table["label"].isin(SYNTH_CLASSES).all()


# ---------------------------------------------------------------------------------------------- evaluate


def test_cell_selectboxes_open_exactly_that_cells_gallery(weights, synth_data):
    from dance.ui.common import gallery_caption

    preds, _ = evaluate_checkpoint(weights / "default", synth_data, "holdout")
    matrix = preds.confusion()
    true_i, pred_i = divmod(int(matrix.argmax()), len(preds.classes))
    true, predicted = preds.classes[true_i], preds.classes[pred_i]
    expected = preds.cell(true, predicted)
    assert len(expected) == matrix.max() > 0

    at = app_at("evaluate")
    at.selectbox(key="eval_true").set_value(true)
    at.selectbox(key="eval_pred").set_value(predicted)
    at.run()
    assert not at.exception, at.exception
    shown = captions(at)[: len(expected)]
    assert shown == [gallery_caption(row) for _, row in expected.iterrows()]
    assert any(m.value.startswith(f"**{len(expected)}** ") and f"true **{true}**, predicted **{predicted}**" in m.value
               for m in at.markdown)


def test_matrix_click_selection_names_its_cell():
    from dance.ui.pages.evaluate import selected_cell

    event = {"selection": {"points": [{"x": "square", "y": "circle", "customdata": ["circle", "square", 2.0]}],
                           "point_indices": [1], "box": [], "lasso": []}}
    assert selected_cell(event) == ("circle", "square")
    assert selected_cell({"selection": {"points": [], "point_indices": [], "box": [], "lasso": []}}) is None
    assert selected_cell(None) is None


def test_out_of_fold_split_without_runs_says_so(weights, monkeypatch):
    from dance import cv

    monkeypatch.setattr(cv, "list_oof_runs", lambda: [])
    at = app_at("evaluate")
    at.get("button_group")[0].set_value("oof").run()
    assert not at.exception, at.exception
    assert any("No cross-validation run" in i.value for i in at.info)


# ---------------------------------------------------------------------------------------------- augmentation


def test_augmentation_grid_shows_the_original_and_n_variants(weights):
    at = app_at("augment")
    at.slider(key="aug_count").set_value(5)
    at.number_input(key="aug_seed").set_value(10)
    at.run()
    assert not at.exception, at.exception
    shown = captions(at)
    assert shown[0] == "circle0.jpg"  # the first training image, shown as the original
    assert shown[1:] == [f"seed {s}" for s in range(10, 15)]


# ---------------------------------------------------------------------------------------------- train


def _fill_train_form(at, data: Path, name: str) -> None:
    """A one-epoch seed-cnn run at 64 px on a small subset."""
    at.selectbox(key="train_model").set_value("seed-cnn")
    at.number_input(key="train_epochs").set_value(1)
    at.select_slider(key="train_size").set_value(64)
    at.select_slider(key="train_batch").set_value(8)
    at.selectbox(key="train_preset").set_value("none")
    at.number_input(key="train_freeze").set_value(0)
    at.slider(key="train_val").set_value(0.25)
    at.number_input(key="train_limit").set_value(18)
    at.text_input(key="train_data").set_value(str(data))
    at.text_input(key="train_name").set_value(name)


def test_one_epoch_run_from_the_train_page_writes_a_loadable_checkpoint(weights, synth_data):
    at = app_at("train")
    _fill_train_form(at, synth_data, "ui-run")
    at.button[0].click().run()  # the form's submit button
    assert not at.exception, at.exception
    job = at.session_state["train_job"]
    job.thread.join(timeout=TIMEOUT)
    assert not job.running and job.error is None
    at.run()
    assert not at.exception, at.exception
    assert any("saved checkpoint **ui\\-run**" in s.value for s in at.success)
    loaded = checkpoint.load(weights / "ui-run")
    assert loaded.classes == SYNTH_CLASSES and loaded.image_size == 64 and loaded.meta["arch"] == "seed-cnn"
    assert len(loaded.meta["history"]) == 1
    at.switch_page("dance/ui/pages/predict.py").run()
    assert at.selectbox(key="predict_model").options == ["default (shipped)", "ui-run"]


def test_train_page_never_overwrites_default_without_confirmation(weights, synth_data):
    before = (weights / "default.safetensors").read_bytes()
    at = app_at("train")
    _fill_train_form(at, synth_data, "default")
    at.button[0].click().run()
    assert "train_job" not in at.session_state
    assert any("Replace the shipped default model" in e.value for e in at.error)
    assert (weights / "default.safetensors").read_bytes() == before


def test_training_error_is_a_message_not_a_traceback(weights, tmp_path):
    at = app_at("train")
    _fill_train_form(at, tmp_path / "nowhere", "x-run")
    at.button[0].click().run()
    job = at.session_state["train_job"]
    job.thread.join(timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "No data set found" in at.error[0].value


# ---------------------------------------------------------------------------------------------- data set


def test_dataset_page_lists_bad_rows_and_undecodable_images(weights, tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "bad", per_class=3, test=1)
    (data / "train" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with open(data / "train.csv", "a") as handle:
        handle.write("missing.jpg,circle\n../escape.jpg,square\nbroken.jpg,stripes\n")
    monkeypatch.setenv("DANCE_DATA", str(data))
    at = app_at("dataset")
    assert metric(at, "Invalid CSV rows") == "2"
    problems = frame_with(at, ["line", "image", "reason"])
    reasons = dict(zip(problems["image"], problems["reason"]))
    assert reasons == {"missing.jpg": "image file not found", "../escape.jpg": "name escapes the image folder ('..')"}
    at.button(key="data_decode_btn").click().run()
    assert not at.exception, at.exception
    failures = frame_with(at, ["image", "reason"])
    assert list(failures["image"]) == ["broken.jpg"] and failures.loc[0, "reason"].startswith("broken.jpg:")
    assert any("1 image(s) fail to decode" in e.value for e in at.error)


def test_dataset_page_without_data_names_where_it_looked(weights, tmp_path, monkeypatch):
    import dance.data

    monkeypatch.delenv("DANCE_DATA")
    monkeypatch.setattr(dance.data, "PROJECT_ROOT", tmp_path / "project")
    monkeypatch.chdir(tmp_path)
    at = app_at("dataset")
    assert len(at.error) == 1
    assert at.error[0].value.startswith("No data set found") and str(tmp_path) in at.error[0].value


def test_out_of_fold_split_reads_a_cv_run(weights, synth_data, tmp_path, monkeypatch):
    import numpy as np

    from dance import cv

    preds, _ = evaluate_checkpoint(weights / "default", synth_data, "holdout")
    oof = tmp_path / "cv" / "run1" / "oof.csv"
    cv.save_oof(oof, preds, np.zeros(len(preds.targets), dtype=int))
    monkeypatch.setattr(cv, "list_oof_runs", lambda: [oof])
    at = app_at("evaluate")
    at.get("button_group")[0].set_value("oof").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert metric(at, "Images") == str(len(preds.targets))
    assert metric(at, "Macro F1") == f"{preds.metrics()['macro_f1']:.3f}"
    assert any("out-of-fold predictions of run1" in c.value for c in at.caption)

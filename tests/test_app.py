"""The Streamlit app under streamlit.testing.v1.AppTest: every page, uploads, the cell gallery, augmentation, training,
Grad-CAM, calibration, the test-set submission and the label-issue review."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SYNTH_CLASSES, make_dataset, plain, synthetic_image
from helpers import copy_checkpoint, encode

from dance.inference import serving
from dance.inference.assess import evaluate_checkpoint
from dance.inference.predict import ImagePrediction
from dance.models import checkpoint
from dance.ui.pages.predict import headline

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 120
RESULT_COLUMNS = ["thumbnail", "answer", "confidence", "image"]


@pytest.fixture()
def weights(tiny_checkpoint, tmp_path, monkeypatch, synth_data) -> Path:
    """A temp weights folder whose default is the tiny checkpoint (DANCE_WEIGHTS_DIR), and an empty runs folder."""
    folder = tmp_path / "weights"
    copy_checkpoint(tiny_checkpoint, folder, "default")
    monkeypatch.setenv("DANCE_WEIGHTS_DIR", str(folder))
    monkeypatch.setenv("DANCE_DATA", str(synth_data))
    monkeypatch.setenv("DANCE_RUNS_DIR", str(tmp_path / "runs"))  # never the project's runs/
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


def metric(at, label: str) -> str:
    """The value of the st.metric with `label`."""
    return next(m.value for m in at.metric if m.label == label)


def frame_with(at, columns: list[str]):
    """The last st.dataframe whose columns are exactly `columns`."""
    return [d.value for d in at.dataframe if list(d.value.columns) == columns][-1]


def captions(at) -> list[str]:
    """Every image caption on the page, in order."""
    return [plain(c) for element in at.image for c in element.captions]


def chart(at, key: str) -> dict:
    """The plotly figure (as JSON) of the st.plotly_chart with `key`."""
    for element in at.get("plotly_chart"):
        if element.proto.id and key in element.proto.id:
            return json.loads(element.proto.spec)
    raise AssertionError(f"no chart {key!r}")


def image_urls(at) -> list[str]:
    """The media URL of every image on the page (it changes with the image's bytes)."""
    return [img.url for element in at.image for img in element.proto.imgs]


# ---------------------------------------------------------------------------------------------- every page


def test_every_page_renders_its_content(weights, synth_data):
    at = app_at("predict")
    assert [t.value for t in at.title] == ["Predict"]
    assert any(e.label == "Model card: default" for e in at.expander)
    assert at.file_uploader[0].accept_multiple_files
    from dance.data.images import UPLOAD_TYPES

    assert sorted(at.file_uploader[0].allowed_type) == sorted(f".{t}" for t in UPLOAD_TYPES)  # GIF, TIFF too
    assert sorted(t.label for t in at.toggle) == ["Show Grad-CAM", "Test-time augmentation", "Use webcam"]
    assert not at.toggle(key="predict_cam").value  # Grad-CAM is opt-in
    assert not at.get("camera_input")  # the browser only asks for the camera after the toggle

    holdout, _ = evaluate_checkpoint(weights / "default", synth_data, "holdout")
    for page, title in [("evaluate", "Evaluate"), ("label_issues", "Label issues"), ("augment", "Augmentation preview"),
                        ("train", "Train"), ("dataset", "Data set")]:
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
    good = encode(synthetic_image("square", seed=4242))
    jpeg = encode(synthetic_image("stripes", seed=77), "JPEG")
    at = app_at("predict")
    uploader = at.file_uploader[0]
    uploader.upload("good.png", good, "image/png")
    uploader.upload("not-an-image.jpg", b"this is text, not pixels", "image/jpeg")
    uploader.upload("empty.png", b"", "image/png")
    uploader.upload("truncated.jpg", jpeg[: len(jpeg) // 3], "image/jpeg")
    at.run()
    assert not at.exception, at.exception

    expected = serving.load(weights / "default").predict([("good.png", good)])[0]
    [box] = [e.value for e in at.error]  # every bad file in one box, each message whole (no cut, no 'None')
    lines = box.splitlines()
    assert lines[0] == "3 of 4 file(s) could not be read:"
    assert lines[2].startswith("- not\\-an\\-image\\.jpg\\: not a supported image")
    assert "expected JPEG, PNG, WebP, BMP, GIF or TIFF" in lines[2]  # the uploader's own list (GIF, TIFF accepted)
    assert lines[3].startswith("- empty\\.png\\:") and "0 bytes" in lines[3]
    assert lines[4].startswith("- truncated\\.jpg\\:")
    table = frame_with(at, RESULT_COLUMNS)
    assert table.values[:, 1:].tolist() == [[expected.label if not expected.unsure else
                                             f"not sure: {expected.ranked[0][0]} or {expected.ranked[1][0]}",
                                             round(100 * expected.confidence, 1), "good.png"]]
    assert table.loc[0, "thumbnail"].startswith("data:image/jpeg;base64,")
    assert not table.isna().any().any()  # nothing renders as 'None'
    order = [type(e).__name__ for e in at.main if type(e).__name__ in ("Error", "Markdown")]
    assert order.index("Error") < order.index("Markdown")  # the errors sit above the answers, not among them
    headings = [m.value for m in at.markdown if m.value.startswith("### ")]
    assert headings == [f"### {headline(expected) if expected.unsure else expected.label}"]


def test_csv_has_label_confidence_unsure_second_label_and_error_columns():
    import pandas as pd

    from dance.ui.pages.predict import csv_bytes

    preds = [ImagePrediction("a.jpg", {"kathak": 0.7, "odissi": 0.3}, threshold=0.5),
             ImagePrediction("b.jpg", {"kathak": 0.45, "odissi": 0.55}, threshold=0.6),
             ImagePrediction("c.jpg", error="c.jpg: file is empty (0 bytes).")]
    frame = pd.read_csv(io.BytesIO(csv_bytes(["a.jpg", "b.jpg", "c.jpg"], preds, ["kathak", "odissi"])))
    assert list(frame.columns) == ["image", "label", "confidence", "unsure", "second_label", "error", "p_kathak",
                                   "p_odissi"]
    assert frame["label"].tolist()[:2] == ["kathak", "odissi"] and pd.isna(frame.loc[2, "label"])
    assert frame["unsure"].tolist()[:2] == [False, True]
    assert frame["second_label"].tolist()[:2] == ["odissi", "kathak"]
    assert frame["confidence"].tolist()[:2] == [0.7, 0.55]
    assert frame.loc[2, "error"] == "c.jpg: file is empty (0 bytes)." and frame["error"].isna().tolist()[:2] == [True] * 2


def test_tta_toggle_changes_nothing_but_the_probabilities(weights):
    img = encode(synthetic_image("circle", seed=5))
    at = app_at("predict")
    at.file_uploader[0].upload("a.png", img, "image/png")
    at.toggle(key="predict_tta").set_value(True)
    at.run()
    expected = serving.load(weights / "default").predict([("a.png", img)], tta=True)[0]
    shown = f"Top probability {expected.confidence:.1%}" if expected.unsure else f"confidence {expected.confidence:.1%}"
    assert any(c.value.startswith(shown) for c in at.caption)


def test_unsure_answer_reads_not_sure_with_top_two():
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
    table = frame_with(at, RESULT_COLUMNS + ["true label"])
    holdout = set(json.loads((weights / "default.json").read_text())["split"]["val_images"])
    assert len(table) == min(4, len(holdout))  # labelled samples, from the model's own hold-out
    assert {name.removeprefix("sample ") for name in table["image"]} <= holdout
    assert [name.rstrip("0123456789.jpg") for name in table["image"].str.removeprefix("sample ")] == \
        table["true label"].tolist()  # synth images are named after their class
    verdicts = [m.value for m in at.markdown if m.value.startswith("True label: ")]
    assert len(verdicts) == len(table) and all(v.endswith(("right", "wrong", "(one of the two)", "(neither)"))
                                               for v in verdicts)


# ---------------------------------------------------------------------------------------------- evaluate


def test_cell_selectboxes_open_exactly_that_cells_gallery(weights, synth_data):
    from dance.ui.widgets import gallery_caption

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
    assert shown == [plain(gallery_caption(row)) for _, row in expected.iterrows()]
    assert any(m.value.startswith(f"**{len(expected)}** ") and f"true **{true}**, predicted **{predicted}**" in m.value
               for m in at.markdown)


def test_switching_split_reopens_the_most_confused_cell(weights, synth_data):
    from dance.ui.pages.evaluate import pair_options

    everything, _ = evaluate_checkpoint(weights / "default", synth_data, "all")
    chosen = next(c for c in SYNTH_CLASSES if c != pair_options(everything)[0])  # a cell the switch must leave
    at = app_at("evaluate")
    at.selectbox(key="eval_true").set_value(chosen)
    at.selectbox(key="eval_pred").set_value(chosen).run()
    assert (at.selectbox(key="eval_true").value, at.selectbox(key="eval_pred").value) == (chosen, chosen)
    at.get("button_group")[0].set_value("all").run()  # new predictions: a stale cell would often be empty
    assert (at.selectbox(key="eval_true").value, at.selectbox(key="eval_pred").value) == pair_options(everything)


def test_matrix_click_selection_names_its_cell():
    from dance.ui.pages.evaluate import selected_cell

    event = {"selection": {"points": [{"x": "square", "y": "circle", "customdata": ["circle", "square", 2.0]}],
                           "point_indices": [1], "box": [], "lasso": []}}
    assert selected_cell(event) == ("circle", "square")
    assert selected_cell({"selection": {"points": [], "point_indices": [], "box": [], "lasso": []}}) is None
    assert selected_cell(None) is None


def test_out_of_fold_split_without_runs_says_so(weights):
    at = app_at("evaluate")
    at.get("button_group")[0].set_value("oof").run()
    assert not at.exception, at.exception
    assert any("No cross-validation run" in i.value for i in at.info)


def test_uploaders_accept_what_the_loader_decodes_and_state_the_configured_limit(weights):
    import tomllib

    from dance.data.images import UPLOAD_TYPES

    limit = tomllib.loads((Path(APP).parent / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    predict = app_at("predict")
    augment = app_at("augment")
    augment.radio(key="aug_source").set_value("Upload").run()
    for uploader in (predict.file_uploader[0], augment.file_uploader[0]):
        assert set(uploader.allowed_type) == {f".{t}" for t in UPLOAD_TYPES} >= {".gif", ".tiff"}
        assert f"up to {limit} MB each" in uploader.help and "GIF" in uploader.help


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
    at.button(key="train_open_predict").click().run()  # "Open ui-run in Predict"
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Predict"]
    assert at.selectbox(key="predict_model").options == ["default (shipped)", "ui-run"]
    assert at.selectbox(key="predict_model").value == "ui-run"


def test_stop_acts_between_batches_and_the_job_says_it_stopped(weights, synth_data, tmp_path):
    import time

    from dance.config import AugmentConfig, TrainConfig
    from dance.ui.jobs import TrainJob

    cfg = TrainConfig(model="seed-cnn", epochs=200, image_size=64, batch_size=4, freeze_epochs=0, val_fraction=0.25,
                      augment=AugmentConfig(preset="none"))
    job = TrainJob(cfg, synth_data, tmp_path / "stopped").start()
    deadline = time.monotonic() + TIMEOUT
    while job.batch < 2 and job.epoch < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    at_stop = job.epoch
    job.stop.set()
    job.thread.join(timeout=TIMEOUT)
    assert job.phase == "stopped" and job.result.stopped
    assert len(job.history) <= at_stop + 1 < cfg.epochs  # within the epoch it was in, not after all 200
    assert 0 < job.fraction < 1  # the bar stays where it stopped instead of reading 100 %
    assert job.status().startswith(f"Stopped by you after {len(job.history)} of 200 epoch(s)")
    early = TrainJob(cfg, synth_data, tmp_path / "never")
    early.stop.set()
    early.start().thread.join(timeout=TIMEOUT)
    assert early.phase == "stopped" and early.result is None  # stopped while decoding: nothing saved
    assert early.status() == "Stopped by you before training began; nothing was saved."
    assert not (tmp_path / "never.safetensors").exists()


def test_train_page_never_overwrites_default_without_confirmation(weights, synth_data):
    before = (weights / "default.safetensors").read_bytes()
    at = app_at("train")
    _fill_train_form(at, synth_data, "default")
    at.button[0].click().run()
    assert "train_job" not in at.session_state
    assert any("Replace the shipped default model" in e.value for e in at.error)
    assert (weights / "default.safetensors").read_bytes() == before


def test_data_folder_outside_the_known_roots_is_refused(weights, tmp_path):
    outside = make_dataset(tmp_path / "elsewhere", per_class=2, test=1)  # a real data set, but not a known root
    at = app_at("train")
    _fill_train_form(at, outside, "x-run")
    at.button[0].click().run()
    assert not at.exception and "train_job" not in at.session_state
    assert len(at.error) == 1 and "only trains on the known data folders" in at.error[0].value


def test_training_error_is_a_message_not_a_traceback(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("DANCE_USER_DATA", str(tmp_path))  # an allowed root, holding no data set
    at = app_at("train")
    _fill_train_form(at, tmp_path / "nowhere", "x-run")
    at.button[0].click().run()
    job = at.session_state["train_job"]
    job.thread.join(timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "No data set found" in at.error[0].value


def test_train_page_distils_from_a_chosen_teacher(weights, synth_data):
    at = app_at("train")
    _fill_train_form(at, synth_data, "student")
    at.slider(key="train_val").set_value(0.0)  # the teacher trained on every image: no hold-out to inflate
    assert at.selectbox(key="train_teacher").options[0] == "none"
    at.selectbox(key="train_teacher").set_value("default")
    at.slider(key="train_distill").set_value(0.7)
    at.button[0].click().run()
    job = at.session_state["train_job"]
    job.thread.join(timeout=TIMEOUT)
    assert not job.running and job.error is None, job.error
    meta = checkpoint.load(weights / "student").meta
    assert meta["config"]["teacher"] == str(weights / "default") and meta["config"]["distill_weight"] == 0.7


# ---------------------------------------------------------------------------------------------- data set


def test_dataset_page_lists_bad_rows_and_undecodable_images(weights, tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "bad", per_class=3, test=1)
    (data / "train" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    shutil.copy(data / "train" / "circle1.jpg", data / "train" / "copy.jpg")  # like 155.jpg and 164.jpg of the real set
    with open(data / "train.csv", "a") as handle:
        handle.write("missing.jpg,circle\n../escape.jpg,square\nbroken.jpg,stripes\ncopy.jpg,square\n")
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
    # circle1.jpg and its copy are one source photo for CV's grouping, shown together, the label clash flagged
    assert any(w.value.startswith("1 photo(s) appear more than once (2 files); 1 of them with different labels")
               for w in at.warning)
    assert {"circle1.jpg · circle", "copy.jpg · square"} <= set(captions(at))
    assert any(c.value == "Labels differ: at most one of them is right." for c in at.caption)


def test_dataset_page_without_data_names_where_it_looked(weights, tmp_path, monkeypatch):
    import dance.paths

    monkeypatch.delenv("DANCE_DATA")
    monkeypatch.setattr(dance.paths, "PROJECT_ROOT", tmp_path / "project")
    monkeypatch.chdir(tmp_path)
    at = app_at("dataset")
    assert len(at.error) == 1
    assert at.error[0].value.startswith("No data set found") and str(tmp_path) in plain(at.error[0].value)


def test_out_of_fold_split_reads_a_cv_run(weights, synth_data, tmp_path):
    from dance.training import cv
    from dance.trust.calibrate import calibrate

    preds, _ = evaluate_checkpoint(weights / "default", synth_data, "holdout")
    cv.save_oof(tmp_path / "runs" / "cv" / "run1" / "oof.csv", preds, np.zeros(len(preds.targets), dtype=int))
    at = app_at("evaluate")
    at.get("button_group")[0].set_value("oof").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert metric(at, "Images") == str(len(preds.targets))
    assert metric(at, "Macro F1") == f"{preds.metrics()['macro_f1']:.3f}"
    assert any("out-of-fold predictions of run1" in plain(c.value) for c in at.caption)
    # OOF probabilities are raw: the calibration section fits its temperature on them.
    fitted = calibrate(preds, "oof")
    assert metric(at, "Temperature") == f"{fitted.temperature:.2f}"
    assert metric(at, "ECE before") == f"{fitted.ece_before:.3f}" and metric(at, "ECE after") == f"{fitted.ece_after:.3f}"


# ---------------------------------------------------------------------------------------------- Grad-CAM


def test_grad_cam_caption_shows_the_answers_own_probability(weights):
    img = encode(synthetic_image("square", seed=31))
    at = app_at("predict")
    at.file_uploader[0].upload("a.png", img, "image/png")
    at.toggle(key="predict_tta").set_value(True)
    at.run()
    assert captions(at) == ["a.png"]
    at.toggle(key="predict_cam").set_value(True).run()
    assert not at.exception, at.exception
    predictor = serving.load(weights / "default")
    pred = predictor.predict([("a.png", img)], tta=True)[0]  # one number: the headline's, TTA included
    assert captions(at) == ["a.png", f"Grad-CAM: where the model sees {pred.label} ({pred.probs[pred.label]:.1%})"]
    other = next(c for c in predictor.classes if c != pred.label)
    [picker] = [s for s in at.selectbox if s.label == "Explain class"]
    assert picker.value == pred.label
    picker.set_value(other).run()
    assert captions(at)[1] == f"Grad-CAM: where the model sees {other} ({pred.probs[other]:.1%})"


def test_gallery_grad_cam_toggle_replaces_the_thumbnails(weights):
    at = app_at("evaluate")
    plain_captions, plain_urls = captions(at), image_urls(at)
    at.toggle(key="eval_cam").set_value(True).run()
    assert not at.exception, at.exception
    assert captions(at) == plain_captions  # the same images and captions ...
    changed = [a != b for a, b in zip(image_urls(at), plain_urls)]
    assert len(changed) == len(plain_urls) > 0 and all(changed)  # ... each drawn as its overlay


# ---------------------------------------------------------------------------------------------- calibration


def test_calibration_section_and_model_card_follow_the_sidecar(weights, synth_data):
    from dance.trust.calibrate import calibrate, save_calibration

    at = app_at("evaluate")
    traces = [t.get("name") for t in chart(at, "eval_reliability")["data"]]
    assert traces == ["perfect", "uncalibrated"]
    from dance.trust.calibrate import reliability_bins

    raw_holdout, _ = evaluate_checkpoint(weights / "default", synth_data, "holdout")
    counts = reliability_bins(raw_holdout.probs, raw_holdout.targets)["count"].tolist()
    assert chart(at, "eval_reliability")["data"][1]["text"] == [f"n={c}" for c in counts]  # each bin's image count
    assert metric(at, "Temperature") == "none"
    assert any("is not calibrated" in i.value and "python -m dance calibrate" in i.value for i in at.info)
    coverage = chart(at, "eval_coverage")
    assert coverage["layout"]["xaxis"]["title"]["text"] == "coverage (share answered)"

    raw, _ = evaluate_checkpoint(weights / "default", synth_data, "holdout")
    fitted = calibrate(raw, "hold-out", target_accuracy=0.99)
    save_calibration(weights / "default", fitted)
    at = app_at("evaluate")
    assert not at.exception, at.exception
    traces = [t.get("name") for t in chart(at, "eval_reliability")["data"]]
    assert traces == ["perfect", "uncalibrated", f"calibrated (T={fitted.temperature:.2f})"]
    assert metric(at, "Temperature") == f"{fitted.temperature:.2f}"
    assert metric(at, "ECE before") == f"{fitted.ece_before:.3f}"
    assert metric(at, "'Not sure' below") == f"{fitted.unsure_threshold:.0%}"
    marker = chart(at, "eval_coverage")["data"][1]
    assert marker["name"] == f"threshold {fitted.unsure_threshold:.2f}"

    at.switch_page("dance/ui/pages/predict.py").run()
    card = dict(frame_with(at, ["field", "value"]).values.tolist())
    assert card["temperature"] == f"{fitted.temperature:.3g}"
    assert card["'not sure' below"] == f"{fitted.unsure_threshold:.1%}"
    assert card["ECE before → after"] == f"{fitted.ece_before:.3f} → {fitted.ece_after:.3f}"


# ---------------------------------------------------------------------------------------------- test set


def test_submission_csv_has_one_row_per_test_csv_row_in_its_order():
    import pandas as pd

    from dance.inference.submission import submission_csv

    paths = [Path("/data/test/z.jpg"), Path("/data/test/a.jpg"), Path("/data/test/m.png")]
    preds = [ImagePrediction("z.jpg", {"kathak": 0.2, "odissi": 0.8}),
             ImagePrediction("a.jpg", error="a.jpg: cannot be decoded."),
             ImagePrediction("m.png", {"kathak": 0.55, "odissi": 0.45}, threshold=0.9)]  # 'not sure' still answers
    text = submission_csv(paths, preds).decode("utf-8")
    assert text.splitlines()[0] == "Image,target"
    back = pd.read_csv(io.StringIO(text), keep_default_na=False)
    assert back.values.tolist() == [["z.jpg", "odissi"], ["a.jpg", ""], ["m.png", "kathak"]]
    with pytest.raises(ValueError):
        submission_csv(paths, preds[:2])


def test_test_folder_action_classifies_every_test_csv_row(weights, synth_data):
    from dance.data.labels import load_unlabelled

    at = app_at("predict")
    at.button(key="predict_testset_btn").click().run()
    assert not at.exception, at.exception
    paths = load_unlabelled(synth_data)
    expected = serving.load(weights / "default").predict([(p.name, str(p)) for p in paths])
    table = frame_with(at, RESULT_COLUMNS)  # the only results table: nothing was uploaded
    assert table["image"].tolist() == [p.name for p in paths]
    assert table["answer"].tolist() == [p.label if not p.unsure else f"not sure: {p.ranked[0][0]} or {p.ranked[1][0]}"
                                        for p in expected]
    assert table["confidence"].tolist() == pytest.approx([round(100 * p.confidence, 1) for p in expected])
    assert table["thumbnail"].str.startswith("data:image/jpeg;base64,").all()
    assert at.session_state["predict_testset"]["paths"] == paths
    at.button(key="predict_testset_close").click().run()
    assert "predict_testset" not in at.session_state


# ---------------------------------------------------------------------------------------------- label issues


def test_label_issues_page_without_a_run_names_the_cv_command(weights):
    at = app_at("label_issues")
    assert [t.value for t in at.title] == ["Label issues"]
    assert not at.error
    assert len(at.info) == 1 and "`python -m dance cv`" in at.info[0].value


def test_label_issues_page_reads_runs_dir_and_saves_corrections_there(weights, synth_data, tmp_path):
    from conftest import SYNTH_CLASSES

    from dance.training.cv import save_oof
    from dance.trust.interpret import Predictions

    paths = sorted((synth_data / "train").glob("*.jpg"))
    truth = np.array([SYNTH_CLASSES.index(p.name.rstrip("0123456789.jpg")) for p in paths])
    probs = np.full((len(paths), 3), 0.05)
    probs[np.arange(len(paths)), truth] = 0.9
    given = truth.copy()
    given[5] = (truth[5] + 2) % 3  # one flipped label
    save_oof(tmp_path / "runs" / "cv" / "demo" / "oof.csv", Predictions(probs, given, [str(p) for p in paths],
                                                                         SYNTH_CLASSES), np.arange(len(paths)) % 3)
    at = app_at("label_issues")
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="li_run").options == ["demo (oof.csv)"]
    assert any(m.value.startswith("**1** of 24 images look mislabelled") for m in at.markdown)
    assert not at.warning  # one flag in 24: no 'weak model' warning
    assert captions(at)[0] == paths[5].name and sum("where default sees" in c for c in captions(at)) == 2
    at.button(key="li_keep").click().run()
    at.button(key="li_save").click().run()
    assert not at.exception, at.exception
    saved = (tmp_path / "runs" / "label_corrections.csv").read_text().splitlines()
    assert saved[0].startswith("Image,given,action") and saved[1].startswith(f"{paths[5].name},{SYNTH_CLASSES[given[5]]},keep")


def test_video_upload_on_predict_reads_as_segments_with_frames_and_downloads(weights, tmp_path):
    from test_video import write_video

    from dance.ui.widgets import md_escape

    clip = write_video(tmp_path / "clip.mp4", [("square", 6), ("stripes", 6)]).read_bytes()
    at = app_at("predict")
    at.number_input(key="predict_video_min_segment").set_value(2.0)
    uploader = at.file_uploader(key="predict_video_upload")
    uploader.upload("recital [1].mp4", clip, "video/mp4")
    uploader.upload("notes.mp4", b"this is text, not a video", "video/mp4")
    at.run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [md_escape("notes.mp4: not a video file (no MP4, MOV, WebM, MKV or AVI "
                                                     "container found).")]
    [heading] = [m.value for m in at.markdown if m.value.startswith("### ")]
    assert heading.startswith(f"### {md_escape('recital [1].mp4')}: ")
    table = [d.value for d in at.dataframe if "answer" in d.value.columns][-1]
    assert list(table["label"]) == ["square", "stripes"]
    change = table.loc[1, "start_clock"]
    assert change in ("0:05", "0:06")
    [segments] = [m.value for m in at.markdown if m.value.startswith("**Segments:**")]
    assert segments == "**Segments:** " + md_escape(f"0:00–{change} square, {change}–0:12 stripes")
    timeline = chart(at, "predict_video_timeline_0")
    assert [t["name"] for t in timeline["data"]] == SYNTH_CLASSES and len(timeline["data"][0]["x"]) == 24
    plain = captions(at)
    assert len(plain) == 6 and all(" · square " in c for c in plain[:3]) and all(" · stripes " in c for c in plain[3:])
    at.toggle(key="predict_video_cam_0").set_value(True).run()
    assert not at.exception, at.exception
    assert [c.split(" · ")[0] for c in captions(at)] == ["Grad-CAM square"] * 3 + ["Grad-CAM stripes"] * 3
    downloads = [b.label for b in at.get("download_button")]
    assert downloads[-3:] == ["Frames CSV", "Segments CSV", "JSON"]

"""The Your data page under AppTest: a zip of two synthetic classes is imported, checked, trained in quick mode and
the new model answers on Predict; a bad zip gets its one sentence; a checkpoint is exported and imported back."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from conftest import plain, synthetic_image
from test_app import weights  # noqa: F401 - the fixture, shared

from dance.inference import serving
from dance.models import checkpoint

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180
KINDS = ("circle", "stripes")  # a red square top-left vs blue vertical stripes


def jpeg(kind: str, seed: int) -> bytes:
    """A synthetic JPEG of class `kind`."""
    buffer = io.BytesIO()
    synthetic_image(kind, seed, 64).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def two_class_zip(per_class: int = 12) -> bytes:
    """One folder per class, inside a top folder (as zipping a folder makes it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for c, kind in enumerate(KINDS):
            for i in range(per_class):
                zf.writestr(f"shapes/{kind}/{kind}-{i}.jpg", jpeg(kind, 500 + 50 * c + i))
    return buffer.getvalue()


@pytest.fixture()
def env(request, tmp_path, monkeypatch) -> Path:
    """test_app's temp weights (default = the tiny checkpoint), runs and data, plus temp user-data and ONNX cache."""
    request.getfixturevalue("weights")
    monkeypatch.setenv("DANCE_USER_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DANCE_CACHE", str(tmp_path / "cache"))
    return tmp_path


def your_data_page():
    """AppTest of app.py on the Your data page."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("dance/ui/pages/your_data.py").run()
    assert not at.exception, at.exception
    return at


def frame_with(at, columns: list[str]):
    """The last st.dataframe whose columns are exactly `columns` (AppTest does not expose dataframe keys)."""
    return [d.value for d in at.dataframe if list(d.value.columns) == columns][-1]


def import_zip(at, data: bytes, name: str, file_name: str = "shapes.zip"):
    """Upload a zip on the page and press Import."""
    at.file_uploader(key="yd_zip").upload(file_name, data, "application/zip")
    at.text_input(key="yd_zip_name").set_value(name)
    at.run()
    at.button(key="yd_zip_go").click().run()
    assert not at.exception, at.exception
    return at


def test_zip_trains_in_quick_mode_and_the_model_answers_on_predict(env):
    at = import_zip(your_data_page(), two_class_zip(), "shapes")
    assert any("as **shapes**" in s.value for s in at.success)
    assert at.selectbox(key="yd_set").value == "shapes"
    assert frame_with(at, ["class", "images"]).to_dict("list") == {"class": list(KINDS), "images": [12, 12]}
    assert not at.error
    at.text_input(key="yd_ckpt").set_value("shapes-quick")
    at.button(key="yd_train").click().run()
    job = at.session_state["yd_job"]
    assert job.cfg.method == "probe" and job.cfg.val_fraction == 0.2
    job.thread.join(timeout=TIMEOUT)
    assert not job.running and job.error is None, job.error
    at.run()
    assert not at.exception, at.exception
    assert any("Trained **shapes\\-quick**" in s.value for s in at.success)
    stem = env / "weights" / "shapes-quick"
    model = checkpoint.load(stem)
    assert model.classes == list(KINDS)
    fresh = [(f"{kind}-new.jpg", jpeg(kind, 9000 + c)) for c, kind in enumerate(KINDS)]
    assert [p.label for p in serving.from_checkpoint(model).predict(fresh)] == list(KINDS)
    at.button(key="yd_try").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="predict_model").value == "shapes-quick"  # the refreshed list holds it, chosen
    at.switch_page("dance/ui/pages/evaluate.py").run()
    at.selectbox(key="eval_model").set_value("shapes-quick").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    images = next(m.value for m in at.metric if m.label == "Images")
    assert images == str(len(model.meta["split"]["val_images"])) == "5"  # scored on its own set's hold-out


def test_bad_zip_is_one_sentence_and_leaves_nothing(env):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("a/1.jpg", jpeg("circle", 1))
        zf.writestr("../../escape.jpg", jpeg("circle", 2))
    at = import_zip(your_data_page(), buffer.getvalue(), "evil", "evil.zip")
    assert [plain(e.value) for e in at.error] == [
        "evil.zip: member '../../escape.jpg' escapes the archive's folder ('..'); nothing was extracted."]
    assert not (env / "data").exists() or list((env / "data").iterdir()) == []


def test_a_set_with_bad_images_lists_them_and_blocks_training_until_fixed(env):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for c, kind in enumerate(KINDS):
            for i in range(3):
                zf.writestr(f"{kind}/{i}.jpg", jpeg(kind, 10 * c + i))
        zf.writestr("circle/broken.jpg", b"not pixels")
    at = import_zip(your_data_page(), buffer.getvalue(), "messy")
    problems = frame_with(at, ["problem"])["problem"].tolist()
    assert len(problems) == 1 and "circle/broken.jpg" in problems[0]
    assert any("Not ready to train" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "yd_train"]
    at.button(key="yd_fix").click().run()
    assert not at.exception, at.exception
    assert frame_with(at, ["class", "images"])["images"].tolist() == [3, 3]
    assert [b for b in at.button if b.key == "yd_train"]


def test_checkpoint_export_then_import_under_a_new_name(env):
    at = your_data_page()
    at.selectbox(key="yd_export_model").set_value("default").run()
    data = at.get("download_button")[0].proto  # the bundle is served through the media manager
    assert "default.zip" in plain(data.label)
    from dance.models.bundle import export_bundle

    _, bundle_bytes = export_bundle(env / "weights" / "default")
    at.file_uploader(key="yd_bundle").upload("default.zip", bundle_bytes, "application/zip")
    at.run()
    at.button(key="yd_bundle_go").click().run()
    assert [plain(e.value) for e in at.error] == [
        "Refusing to overwrite weights/default without an explicit confirmation."]
    at.text_input(key="yd_bundle_name").set_value("shared")
    at.button(key="yd_bundle_go").click().run()
    assert any("Imported **shared**" in s.value for s in at.success)
    assert checkpoint.load(env / "weights" / "shared").classes == checkpoint.load(env / "weights" / "default").classes
    at.switch_page("dance/ui/pages/predict.py").run()
    assert "shared" in at.selectbox(key="predict_model").options


def test_cross_validation_on_request_writes_a_run_that_evaluate_and_label_issues_read(env):
    at = import_zip(your_data_page(), two_class_zip(per_class=6), "small")
    at.button(key="yd_cv").click().run()
    assert not at.exception, at.exception
    assert any(i.value.startswith("Cross-validated (5 folds, 12 images): macro-F1 ") for i in at.info)
    runs = list((env / "runs" / "cv").glob("small-*/oof.csv"))
    assert len(runs) == 1
    at.switch_page("dance/ui/pages/label_issues.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "python -m dance cv" not in " ".join(i.value for i in at.info)  # it found the run

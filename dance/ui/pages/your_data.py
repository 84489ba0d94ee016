"""Your data page: bring a labelled image set (a zip, classes with uploads, webcam shots), check it as `dance check`
does, train a quick or full model on it, try it on Predict; export and import checkpoints as zip bundles."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from dance import paths
from dance.data import datasets
from dance.data.images import UPLOAD_TYPES
from dance.models import bundle, checkpoint
from dance.plots import class_distribution_figure, history_figure
from dance.training import recipes
from dance.ui.cache import list_checkpoints, refresh_checkpoints
from dance.ui.jobs import TrainJob
from dance.ui.widgets import checkpoint_picker, md_escape, page_errors, tiles

JOB_KEY = "yd_job"
SET_KEY = "yd_set"
MAX_CLASSES = 10
DUPLICATE_GROUPS_SHOWN = 6


@st.cache_data(show_spinner="Checking every row and image…", max_entries=8)
def _report(folder: str, mtime: float) -> datasets.SetReport:
    """validate_set, once per (folder, train.csv mtime)."""
    return datasets.validate_set(folder)


def set_report(folder: Path) -> datasets.SetReport:
    """The cached validation report of a set folder."""
    return _report(str(folder), (folder / "train.csv").stat().st_mtime)


@st.cache_data(show_spinner="Packing the checkpoint…", max_entries=2)
def _bundle(stem: str, mtime: float) -> tuple[str, bytes]:
    """export_bundle, once per (checkpoint, mtime)."""
    return bundle.export_bundle(stem)


def _chosen(name: str) -> None:
    """Select a set (after creating it) and rerun."""
    st.session_state[SET_KEY] = name
    _report.clear()


# ---------------------------------------------------------------------------------------------- adding a set


def _from_zip(replace: bool) -> None:
    """Upload a zip: one folder per class, or images and an Image,target CSV."""
    upload = st.file_uploader("Data set zip", type=["zip"], key="yd_zip",
                              help="One folder per class (cats/1.jpg, dogs/2.jpg), or images plus an Image,target "
                                   "CSV. Up to 20 MB here; bigger sets with `python -m dance data import`.")
    name = st.text_input("Name of the new set", key="yd_zip_name", placeholder="my-photos")
    if st.button("Import the zip", key="yd_zip_go", type="primary", disabled=upload is None or not name.strip()):
        info = datasets.import_zip(upload.getvalue(), name.strip(), replace=replace, display=upload.name)
        _chosen(info.name)
        st.success(f"Imported {md_escape(upload.name)} as **{md_escape(info.name)}**.")


def _class_inputs(index: int, webcam: bool) -> tuple[str, list[tuple[str, bytes]]]:
    """Name, uploads and webcam shots of one class; returns (name, [(file name, bytes)])."""
    name = st.text_input(f"Class {index + 1}", key=f"yd_class_{index}", placeholder=f"class {index + 1}")
    files = st.file_uploader(f"Images of class {index + 1}", type=list(UPLOAD_TYPES), accept_multiple_files=True,
                             key=f"yd_files_{index}", label_visibility="collapsed")
    items = [(f.name, f.getvalue()) for f in files or []]
    shots = st.session_state.setdefault(f"yd_shots_{index}", [])
    if webcam:
        shot = st.camera_input(f"Webcam shot for class {index + 1}", key=f"yd_cam_{index}")
        if shot is not None and st.button("Add this shot", key=f"yd_cam_add_{index}", icon=":material/add_a_photo:"):
            shots.append(shot.getvalue())
    if shots:
        st.caption(f"{len(shots)} webcam shot(s) kept for this class.")
    items += [(f"webcam-{i}.jpg", data) for i, data in enumerate(shots)]
    st.caption(f"{len(items)} image(s)")
    return name, items


def _from_classes(replace: bool) -> None:
    """Teachable Machine style: name the classes, drop images (or take webcam shots) into each."""
    count = int(st.number_input("Number of classes", 2, MAX_CLASSES, 3, key="yd_nclasses"))
    webcam = st.toggle("Use the webcam", key="yd_webcam", help="The browser asks for camera access only when on.")
    columns = st.columns(min(count, 4))
    classes: dict[str, list[tuple[str, bytes]]] = {}
    for i in range(count):
        with columns[i % len(columns)]:
            label, items = _class_inputs(i, webcam)
            classes[label.strip() or f"class {i + 1}"] = items
    name = st.text_input("Name of the new set", key="yd_new_name", placeholder="my-classes")
    if st.button("Create the set", key="yd_new_go", type="primary", disabled=not name.strip()):
        if len(classes) < count:
            st.error("Two classes have the same name; give every class its own name.")
            return
        info = datasets.create_from_classes(name.strip(), classes, replace=replace,
                                            source="webcam and uploads" if webcam else "uploads")
        for i in range(count):
            st.session_state.pop(f"yd_shots_{i}", None)
        _chosen(info.name)
        st.success(f"Created **{md_escape(info.name)}** with {sum(len(v) for v in classes.values())} images.")


def _add_set() -> None:
    """The three ways to bring a set."""
    how = st.radio("How", ["Upload a zip", "Create classes and add images"], horizontal=True, key="yd_how")
    replace = st.checkbox("Replace a set with the same name", key="yd_replace")
    with page_errors():
        if how == "Upload a zip":
            _from_zip(replace)
        else:
            _from_classes(replace)


# ---------------------------------------------------------------------------------------------- checking a set


def _show_report(report: datasets.SetReport) -> None:
    """Counts, problems (with a one-click fix) and near-duplicate groups of a set."""
    cols = st.columns(3)
    cols[0].metric("Images that pass", len(report.rows))
    cols[1].metric("Classes", len(report.counts))
    cols[2].metric("Problems", len(report.problems))
    if report.counts:
        st.plotly_chart(class_distribution_figure(pd.Series(report.counts)), config={"displayModeBar": False},
                        key="yd_counts")
        st.dataframe(pd.DataFrame({"class": list(report.counts), "images": list(report.counts.values())}),
                     hide_index=True, key="yd_counts_table")
    if report.problems:
        st.error(f"{len(report.problems)} row(s) or image(s) fail the same checks as `dance check`; nothing is "
                 "trained until they are fixed.")
        st.dataframe(pd.DataFrame({"problem": report.problems}), hide_index=True, width="stretch", key="yd_problems")
        if st.button(f"Remove the {len(report.problems)} failing row(s) from this set", key="yd_fix",
                     help="Rewrites this set's train.csv without them (the image files stay on disk)."):
            datasets.drop_problem_rows(report.path)
            _report.clear()
            st.rerun()
    if report.duplicates:
        st.warning(f"{len(report.duplicates)} group(s) of near-duplicate photos: they are kept on one side of every "
                   "split, so they never inflate the hold-out score; remove them if they are accidental copies.")
        for group in report.duplicates[:DUPLICATE_GROUPS_SHOWN]:
            names = [str(Path(p).relative_to(report.path / "train")) for p in group]
            tiles(group[:4], names[:4], columns=4)
    for blocker in report.blockers:
        st.warning(f"Not ready to train: {md_escape(blocker)}.")


# ---------------------------------------------------------------------------------------------- training


def _start(report: datasets.SetReport, set_name: str) -> None:
    """Mode, name and the start button; stores a TrainJob in session state."""
    mode = st.radio("Training", list(recipes.MODES), format_func=recipes.MODES.get, key="yd_mode")
    st.session_state.setdefault("yd_ckpt", f"{set_name}-{datetime.now().strftime('%H%M%S')}")
    name = st.text_input("Save the model as", key="yd_ckpt", help="A new checkpoint in weights/.").strip()
    cfg = recipes.recipe(mode, report.counts)
    if not cfg.val_fraction:
        st.caption(f"Fewer than {recipes.HOLDOUT_MIN} images in a class: training uses every image and reports no "
                   "hold-out score (cross-validate for one).")
    left, right = st.columns(2)
    if left.button("Start training", key="yd_train", type="primary", icon=":material/play_arrow:"):
        if not bundle.NAME_PATTERN.match(name):
            st.error("Model name: use 1-64 letters, digits, '-' or '_', starting with a letter or digit.")
            return
        if any((paths.weights_root() / f"{name}{s}").exists() for s in (".json", ".safetensors")):
            st.error(f"A checkpoint named {md_escape(name)} already exists; choose a new name.")
            return
        st.session_state[JOB_KEY] = TrainJob(cfg, report.path, paths.weights_root() / name).start()
        st.session_state.pop("yd_ckpt", None)
        st.rerun()
    if right.button("Cross-validate (quick recipe)", key="yd_cv", icon=":material/analytics:",
                    help="Grouped k-fold CV: the honest accuracy estimate. Seconds with the quick recipe."):
        with st.spinner("Cross-validating…"):
            result = recipes.cross_validate_set(report.path, report.counts,
                                                f"{set_name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
        st.session_state["yd_cv_result"] = result.summary
    summary = st.session_state.get("yd_cv_result")
    if summary:
        st.info(f"Cross-validated ({summary['k']} folds, {summary['images']} images): macro-F1 "
                f"{summary['macro_f1']['mean']:.3f} ± {summary['macro_f1']['std']:.3f}, accuracy "
                f"{summary['accuracy']['mean']:.1%}. The out-of-fold run is on the Evaluate page.")


@st.fragment(run_every=1.0)
def _live(job: TrainJob) -> None:
    """Progress and curves, refreshed every second; a full rerun when the job ends."""
    st.progress(job.fraction, text=job.status())
    if job.history:
        st.plotly_chart(history_figure(job.history), config={"displayModeBar": False}, key="yd_live_curves")
    if job.running:
        st.button("Stop", key="yd_stop", on_click=job.stop.set, icon=":material/stop:", disabled=job.stop.is_set())
    else:
        st.rerun()


def _result(job: TrainJob) -> None:
    """The finished job: its error, or a card with the new model and a way to try it."""
    if not job.acknowledged:
        refresh_checkpoints()  # the new checkpoint appears in every picker at once
        job.acknowledged = True
    if job.error:
        st.error(md_escape(job.error))
    else:
        result = job.result
        seconds = (job.finished or job.started) - job.started
        with st.container(border=True):
            st.success(f"Trained **{md_escape(result.checkpoint.name)}** in {seconds:.0f} s.")
            cols = st.columns(3)
            if result.holdout is not None:
                metrics = result.holdout.metrics()
                cols[0].metric("Hold-out accuracy", f"{metrics['accuracy']:.1%}")
                cols[1].metric("Hold-out macro F1", f"{metrics['macro_f1']:.3f}")
                cols[2].metric("Hold-out images", metrics["count"])
            else:
                cols[0].metric("Hold-out accuracy", "none (trained on every image)")
            st.caption("Classes: " + md_escape(", ".join(checkpoint.read_sidecar(result.checkpoint)["classes"])))
            if len(result.history) > 1:
                st.plotly_chart(history_figure(result.history), config={"displayModeBar": False}, key="yd_curves")
            if st.button("Try it on Predict", key="yd_try", type="primary", icon=":material/photo_camera:"):
                st.session_state["predict_model"] = result.checkpoint.name
                st.switch_page("dance/ui/pages/predict.py")
    st.button("Train another", key="yd_again", on_click=lambda: st.session_state.pop(JOB_KEY, None))


def _train(report: datasets.SetReport, set_name: str) -> None:
    """Start a run, follow it, or show its result."""
    job: TrainJob | None = st.session_state.get(JOB_KEY)
    if job is not None and job.running:
        st.info(f"Training **{md_escape(job.output.name)}** on {md_escape(Path(job.data_dir).name)}; you can switch "
                "pages meanwhile.")
        _live(job)
    elif job is not None:
        _result(job)
    elif report.ready:
        _start(report, set_name)


# ---------------------------------------------------------------------------------------------- sharing models


def _share() -> None:
    """Download a checkpoint as a zip; import one."""
    st.subheader("Share a model")
    ref = checkpoint_picker("Checkpoint to download", key="yd_export_model")
    if ref is not None:
        with page_errors():
            file_name, data = _bundle(ref.stem, ref.mtime)
            st.download_button(f"Download {md_escape(file_name)}", data, file_name=file_name, mime="application/zip",
                               key="yd_export", icon=":material/download:",
                               help="Weights (safetensors), sidecar (JSON) and the ONNX copy when there is one.")
    upload = st.file_uploader("Import a checkpoint zip", type=["zip"], key="yd_bundle",
                              help="A zip made by Download (or `python -m dance bundle export`). Checked before it "
                                   "is saved; pickle files are refused.")
    name = st.text_input("Import as (empty: the name inside the zip)", key="yd_bundle_name")
    replace = st.checkbox("Replace a checkpoint with the same name", key="yd_bundle_replace")
    if st.button("Import the checkpoint", key="yd_bundle_go", disabled=upload is None):
        with page_errors():
            stem = bundle.import_bundle(upload.getvalue(), name.strip() or None, replace=replace, display=upload.name)
            refresh_checkpoints()
            st.success(f"Imported **{md_escape(stem.name)}**; it is in every model picker now.")


def render() -> None:
    """Draw the Your data page."""
    st.title("Your data")
    st.caption("Bring your own labelled photos, check them, train a classifier on them (quick mode: well under a "
               f"minute on a quiet CPU) and try it. Sets are stored in {paths.user_data_root()}, models in "
               f"{paths.weights_root()}.")
    with page_errors():
        sets = [s.name for s in datasets.list_sets()]
        with st.expander("Add a data set", expanded=not sets):
            _add_set()
        sets = [s.name for s in datasets.list_sets()]
        if sets:
            if st.session_state.get(SET_KEY) not in sets:
                st.session_state[SET_KEY] = sets[0]
            name = st.selectbox("Data set", sets, key=SET_KEY)
            folder = datasets.set_path(name)
            report = set_report(folder)
            _show_report(report)
            st.subheader("Train on it")
            _train(report, name)
        else:
            st.info("No data set yet: add one above.")
    with page_errors():
        _share()
    if list_checkpoints() and st.session_state.get(JOB_KEY) is None:
        st.caption("Every trained or imported model is listed on Predict, Evaluate and Label issues.")


if __name__ == "__main__":
    render()

"""Train page: a form that trains a model in a background thread, with live curves, a stop button, a new checkpoint."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import streamlit as st

from dance import paths
from dance.config import AugmentConfig, TrainConfig
from dance.errors import DanceError
from dance.models import checkpoint
from dance.models.registry import REGISTRY
from dance.plots import history_figure
from dance.training.transforms import PRESETS
from dance.ui.cache import MODEL_REQUEST, list_checkpoints, refresh_checkpoints
from dance.ui.jobs import TrainJob
from dance.ui.widgets import data_dir_or_error, md_escape, page_errors

JOB_KEY = "train_job"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SIZES = (0, 64, 96, 128, 160, 192, 224, 240, 260)
BATCH_SIZES = (4, 8, 16, 32, 64)


def build_config(values: dict) -> TrainConfig:
    """TrainConfig from the form's values (keys as in TrainConfig, plus 'preset' and 'strength')."""
    return TrainConfig(
        model=values["model"], epochs=int(values["epochs"]), lr=float(values["lr"]),
        batch_size=int(values["batch_size"]), image_size=int(values["image_size"]),
        freeze_epochs=int(values["freeze_epochs"]), val_fraction=float(values["val_fraction"]),
        limit=int(values["limit"]), augment=AugmentConfig(preset=values["preset"]).scaled(float(values["strength"])),
        teacher=values.get("teacher") or "",
        distill_weight=float(values.get("distill_weight", TrainConfig.distill_weight)),
    )


def check_name(name: str, folder: Path, overwrite_default: bool) -> str | None:
    """Why a checkpoint name cannot be used, or None when it is fine."""
    if not NAME_PATTERN.match(name):
        return "Checkpoint name: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit."
    target = folder / name  # the files train() will write, resolved the same way
    if checkpoint.is_default(target):
        return None if overwrite_default else (
            "'default' is the shipped model: tick 'Replace the shipped default model' to overwrite it.")
    if checkpoint.exists(target):
        return f"A checkpoint named {name!r} already exists in {folder}; choose a new name."
    return None


def _suggested_name(model: str) -> str:
    """A fresh, descriptive checkpoint name."""
    return f"{model}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _form(folder: Path | None) -> None:
    """The training form; starting a run stores a TrainJob in session state."""
    defaults = TrainConfig()
    st.session_state.setdefault("train_name", _suggested_name(defaults.model))
    st.session_state.setdefault("train_data", str(folder) if folder else "")
    with st.form("train_form"):
        left, mid, right = st.columns(3)
        with left:
            model = st.selectbox("Model", list(REGISTRY), index=list(REGISTRY).index(defaults.model),
                                 key="train_model", help="\n\n".join(f"**{n}**: {s.description}"
                                                                     for n, s in REGISTRY.items()))
            epochs = st.number_input("Epochs", 1, 300, defaults.epochs, key="train_epochs")
            lr = st.number_input("Learning rate", 1e-5, 1.0, defaults.lr, format="%.5f", step=1e-4, key="train_lr")
            batch_size = st.select_slider("Batch size", BATCH_SIZES, value=defaults.batch_size, key="train_batch")
        with mid:
            image_size = st.select_slider("Image size", SIZES, value=defaults.image_size, key="train_size",
                                          format_func=lambda s: "model's own" if s == 0 else f"{s} px")
            preset = st.selectbox("Augmentation preset", PRESETS, index=PRESETS.index(defaults.augment.preset),
                                  key="train_preset")
            strength = st.slider("Augmentation strength", 0.0, 2.0, 1.0, 0.1, key="train_strength",
                                 help="Scales rotation, shift, zoom, colour jitter and the crop range (1 = defaults).")
            freeze = st.number_input("Frozen-backbone epochs", 0, 50, defaults.freeze_epochs, key="train_freeze",
                                     help="Head-only epochs first (pretrained models only).")
        with right:
            val_fraction = st.slider("Hold-out fraction", 0.0, 0.45, defaults.val_fraction, 0.05, key="train_val",
                                     help="0 trains on everything (then the checkpoint has no hold-out).")
            limit = st.number_input("Use only N images (0 = all)", 0, 100_000, defaults.limit, key="train_limit",
                                    help="A small stratified subset, for a quick run.")
            teachers = {ref.name: ref.stem for ref in list_checkpoints()}
            teacher = st.selectbox("Teacher (distillation)", ["none", *teachers], key="train_teacher",
                                   help="The new model also learns to match this checkpoint's softened predictions "
                                        "on the same augmented images (how the shipped default learnt from 'large'). "
                                        "Use hold-out fraction 0, or a teacher that held out the same images.")
            distill_weight = st.slider("Distillation weight", 0.1, 0.9, defaults.distill_weight, 0.1,
                                       key="train_distill", help="Share of the loss that matches the teacher.")
            data = st.text_input("Data folder", key="train_data", help="A folder with train.csv and train/.")
            name = st.text_input("Save as (checkpoint name)", key="train_name")
        overwrite = st.checkbox("Replace the shipped default model (weights/default)", key="train_overwrite")
        submitted = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:")
    if not submitted:
        return
    name = name.strip()
    try:
        data_dir = str(paths.allowed_data_dir(data.strip())) if data.strip() else None
    except DanceError as exc:
        st.error(md_escape(exc))
        return
    problem = check_name(name, paths.weights_root(), overwrite)
    if problem:
        st.error(md_escape(problem))
        return
    cfg = build_config({"model": model, "epochs": epochs, "lr": lr, "batch_size": batch_size,
                        "image_size": image_size, "preset": preset, "strength": strength, "freeze_epochs": freeze,
                        "val_fraction": val_fraction, "limit": limit,
                        "teacher": teachers.get(teacher, ""), "distill_weight": distill_weight})
    target = paths.weights_root() / name
    st.session_state[JOB_KEY] = TrainJob(cfg, data_dir, target,
                                         overwrite=checkpoint.is_default(target) and overwrite).start()
    st.session_state.pop("train_name", None)  # the next run suggests a fresh name
    st.rerun()


def _draw_progress(job: TrainJob) -> None:
    """Decoding bar (until training starts), training bar with status and time estimate, and the curves."""
    if job.phase in ("starting", "decoding"):
        st.progress(job.decode_fraction, text=job.status())
        st.caption("Every image is decoded once before the first epoch; the training bar follows.")
        return
    st.progress(job.fraction, text=job.status())
    if len(job.history) >= 2:
        st.plotly_chart(history_figure(job.history), config={"displayModeBar": False})
    elif job.history:
        record = job.history[-1]
        numbers = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in record.items()
                            if k.endswith(("loss", "acc")) and isinstance(v, float))
        st.caption(f"Epoch 1: {numbers}. Curves need two finished epochs.")
    elif job.running:
        st.caption("Curves appear after the first epochs.")


@st.fragment(run_every=1.0)
def _live(job: TrainJob) -> None:
    """Refreshes itself every second while the job runs; a full rerun when it ends."""
    _draw_progress(job)
    if job.running:
        st.button("Stop", key="train_stop", on_click=job.stop.set, icon=":material/stop:",
                  disabled=job.stop.is_set(), help="Stops after the current batch and saves the weights as they are.")
    else:
        st.rerun()


def _open_in_predict(name: str) -> None:
    """Button callback: ask the Predict page to serve the new checkpoint (switch_page follows in the script)."""
    refresh_checkpoints()
    st.session_state[MODEL_REQUEST] = name


def _finished(job: TrainJob) -> None:
    """Outcome of a finished job: the error, or the saved checkpoint and its numbers."""
    if not job.acknowledged:
        refresh_checkpoints()  # the new checkpoint appears in every picker
        job.acknowledged = True
    if job.error:
        st.error(md_escape(job.error))
    elif job.result is None:
        st.warning(job.status())
    else:
        result = job.result
        name = result.checkpoint.name
        if result.stopped:
            st.warning(f"{job.status()} Checkpoint **{md_escape(name)}** in "
                       f"{md_escape(str(result.checkpoint.parent))}.")
        else:
            st.success(f"Training finished: saved checkpoint **{md_escape(name)}** in "
                       f"{md_escape(str(result.checkpoint.parent))}.")
        if st.button(f"Open {name} in Predict", key="train_open_predict", type="primary",
                     icon=":material/photo_camera:", on_click=_open_in_predict, args=(name,)):
            st.switch_page("dance/ui/pages/predict.py")
        if result.holdout is not None:
            metrics = result.holdout.metrics()
            cols = st.columns(3)
            cols[0].metric("Hold-out accuracy", f"{metrics['accuracy']:.1%}")
            cols[1].metric("Hold-out macro F1", f"{metrics['macro_f1']:.3f}")
            cols[2].metric("Hold-out images", metrics["count"])
        _draw_progress(job)
    st.button("Train another", key="train_clear", on_click=lambda: st.session_state.pop(JOB_KEY, None))


def render() -> None:
    """Draw the Train page."""
    st.title("Train")
    st.caption("Train a model on the labelled data set and save it as a new checkpoint in weights/.")
    with page_errors():
        folder, problem = data_dir_or_error()
        if folder is None:
            st.warning(f"{md_escape(problem)} Enter a data folder below.")
        job: TrainJob | None = st.session_state.get(JOB_KEY)
        if job is not None and job.running:
            st.info(f"Training **{md_escape(job.output.name)}** ({job.cfg.model}, {job.cfg.epochs} epoch(s)). "
                    "One run at a time per session; you can switch pages meanwhile.")
            _live(job)
            return
        if job is not None:
            _finished(job)
            return
        _form(folder)


if __name__ == "__main__":
    render()

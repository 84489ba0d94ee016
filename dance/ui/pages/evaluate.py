"""Evaluate page: metrics, per-class report, a clickable confusion matrix, galleries of where the model goes wrong
(optionally as Grad-CAM overlays) and how trustworthy its confidence is (reliability diagram, "not sure" trade-off)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from dance.data import datasets
from dance.inference.assess import evaluate_checkpoint, holdout_names
from dance.inference.predict import Predictor
from dance.plots import confusion_figure, coverage_figure, reliability_figure
from dance.trust.calibrate import coverage_curve
from dance.trust.confidence import CalibrationView, calibration_view
from dance.trust.interpret import Predictions
from dance.ui.cache import (
    CheckpointRef,
    checkpoint_run,
    load_oof,
    load_predictor,
    oof_runs,
    run_label,
    served_run_first,
)
from dance.ui.widgets import checkpoint_picker, data_dir_or_error, gallery, md_escape, page_errors, percent

SPLITS = {
    "holdout": "Hold-out of the checkpoint",
    "all": "All labelled images (optimistic)",
    "oof": "Cross-validation out-of-fold",
}
MATRIX_KEY = "eval_matrix"
TRUE_KEY, PRED_KEY = "eval_true", "eval_pred"
SOURCE_KEY = "eval_source"


@st.cache_data(show_spinner="Classifying the labelled images (once; cached afterwards)…", max_entries=16)
def _checkpoint_predictions(_predictor: Predictor, stem: str, mtime: float, split: str,
                            data_dir: str) -> tuple[Predictions, str]:
    """Predictions of a checkpoint on a split, cached per (checkpoint path, mtime, split, data folder)."""
    return evaluate_checkpoint(stem, data_dir, split, predictor=_predictor)


@dataclass
class Loaded:
    """What the page evaluates: predictions, where they come from, and the checkpoint behind them (None for CV runs)."""

    preds: Predictions
    label: str
    predictor: Predictor | None = None
    ref: CheckpointRef | None = None


@st.cache_data(show_spinner="Reading out-of-fold predictions…", max_entries=16)
def _oof_predictions(path: str, mtime: float) -> Predictions:
    """Out-of-fold predictions of a cross-validation run, cached per (file, mtime)."""
    return load_oof(path)


def ece_note(loaded: Loaded, view: CalibrationView) -> str:
    """Where the ECE figures come from, as Markdown (user-controlled names escaped)."""
    if view.fitted_here:
        return "Fitted here on these out-of-fold predictions (what `python -m dance calibrate --oof` would store)."
    if view.measured_on is None:
        return "ECE computed on these images."
    before, after = view.ece_here
    return (f"ECE as measured when {md_escape(loaded.predictor.ckpt.name)} was calibrated, on "
            f"{md_escape(str(view.measured_on['source']))} ({md_escape(str(view.measured_on['count']))} images); "
            f"on these images: {before:.3f} → {after:.3f}.")


def pair_options(preds: Predictions) -> tuple[str, str]:
    """Default gallery cell: the most confused pair, or the first class's diagonal when nothing is confused."""
    confused = preds.most_confused()
    if not confused.empty:
        return str(confused.iloc[0]["true"]), str(confused.iloc[0]["predicted"])
    return preds.classes[0], preds.classes[0]


def selected_cell(event) -> tuple[str, str] | None:
    """(true, predicted) of the first selected confusion-matrix marker, from a plotly selection event."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for point in points:
        data = point.get("customdata")
        if data and len(data) >= 2:
            return str(data[0]), str(data[1])
    return None


def _on_matrix_select() -> None:
    """Clicking a cell drives the same selectboxes as choosing by hand, so both stay in sync."""
    cell = selected_cell(st.session_state.get(MATRIX_KEY))
    if cell:
        st.session_state[TRUE_KEY], st.session_state[PRED_KEY] = cell


def pair_label(row) -> str:
    """'true → predicted (count)' for the most-confused list."""
    return f"{row['true']} → {row['predicted']} ({row['count']})"


def _on_pair(pairs: dict[str, tuple[str, str]]) -> None:
    """Choosing a pair opens its gallery (through the same selectboxes); the pill is then released."""
    chosen = st.session_state.get("eval_pair")
    if chosen in pairs:
        st.session_state[TRUE_KEY], st.session_state[PRED_KEY] = pairs[chosen]
    st.session_state["eval_pair"] = None


def _open_run(run: Path) -> None:
    """Button callback: switch to the cross-validation split, on `run`."""
    st.session_state["eval_split"] = "oof"
    st.session_state["eval_oof_run"] = run


def _no_holdout(predictor: Predictor) -> None:
    """Why a checkpoint trained on everything has no hold-out, in app terms, and a way to its CV run."""
    name = predictor.ckpt.name
    run = checkpoint_run(name)
    cv = predictor.ckpt.meta.get("metrics", {}).get("cv", {})
    honest = f" Cross-validation puts its accuracy at {percent(cv['accuracy_mean'])}." if "accuracy_mean" in cv else ""
    st.info(f"**{md_escape(name)}** was trained on every labelled image, so no image is left to test it on: it has no "
            f"hold-out.{honest} Its cross-validation run shows how models made by the same recipe do on images they "
            "never saw; 'All labelled images' shows it on its own training images (optimistic).",
            icon=":material/info:")
    if run is not None:
        st.button(f"Show {name}'s cross-validation run", key="eval_open_cv", type="primary",
                  icon=":material/arrow_forward:", on_click=_open_run, args=(run,))


def _load(split: str) -> Loaded | None:
    """Predictions for the chosen split, or None after showing why there are none."""
    if split == "oof":
        runs = served_run_first(oof_runs())  # the served model's own run first, not the newest file
        if not runs:
            st.info("No cross-validation run found yet. Make one with `python -m dance cv` "
                    "(it writes runs/cv/<name>/oof.csv), then come back.")
            return None
        path = Path(st.selectbox("Cross-validation run", runs, key="eval_oof_run", format_func=run_label))
        return Loaded(_oof_predictions(str(path), path.stat().st_mtime),
                      f"out-of-fold predictions of {path.parent.name}")
    ref = checkpoint_picker("Checkpoint", key="eval_model")
    if ref is None:
        return None
    predictor = load_predictor(ref)
    folder = datasets.training_folder(predictor.ckpt.meta)  # a model of a user set is scored on that set
    if folder is None:
        folder, problem = data_dir_or_error()
    if folder is None:
        st.error(md_escape(problem))
        return None
    if split == "holdout" and not holdout_names(predictor.ckpt.meta):
        _no_holdout(predictor)
        return None
    preds, label = _checkpoint_predictions(predictor, ref.stem, ref.mtime, split, str(folder))
    return Loaded(preds, label, predictor, ref)


def _cam_source(loaded: Loaded, show: bool) -> tuple[Predictor, CheckpointRef] | None:
    """The checkpoint whose Grad-CAM the galleries show (for a CV run, one picked in the sidebar), or None."""
    if not show:
        return None
    if loaded.predictor is not None:
        return loaded.predictor, loaded.ref
    with st.sidebar:
        ref = checkpoint_picker("Model for Grad-CAM", key="eval_cam_model")
        st.caption("Out-of-fold predictions come from the fold models; the overlays show where this checkpoint "
                   "looks for the class the fold model predicted.")
    return (load_predictor(ref), ref) if ref is not None else None


def outline_cell(fig, classes: list[str], true: str | None, predicted: str | None) -> None:
    """Outline the cell whose gallery is open, so the matrix shows what is being browsed."""
    if true not in classes or predicted not in classes:
        return
    col, row = classes.index(predicted), len(classes) - 1 - classes.index(true)
    fig.add_shape(type="rect", xref="x", yref="y", x0=col - 0.5, x1=col + 0.5, y0=row - 0.5, y1=row + 0.5,
                  line={"width": 3, "color": "#2b2118"}, layer="above")


def _metrics(preds: Predictions, label: str, split: str) -> None:
    """Headline numbers."""
    metrics = preds.metrics()
    cols = st.columns(4)
    cols[0].metric("Accuracy", f"{metrics['accuracy']:.1%}")
    cols[1].metric("Macro F1", f"{metrics['macro_f1']:.3f}")
    cols[2].metric("Weighted F1", f"{metrics['weighted_f1']:.3f}")
    cols[3].metric("Images", metrics["count"])
    st.caption(f"Evaluated on: {md_escape(label)}.")
    if split == "all":
        st.warning("Optimistic: 'all labelled images' includes the images this model was trained on. "
                   "Use the hold-out or a cross-validation run for an honest estimate.")


def _sync_defaults(preds: Predictions, source: str) -> None:
    """Give the cell selectboxes valid values before they are drawn: the most confused pair whenever the
    predictions change (another split, run or checkpoint), else keep the user's choice if it is still a class."""
    default = pair_options(preds)
    changed = st.session_state.get(SOURCE_KEY) != source
    st.session_state[SOURCE_KEY] = source
    for key, value in zip((TRUE_KEY, PRED_KEY), default):
        if changed or st.session_state.get(key) not in preds.classes:
            st.session_state[key] = value


def _matrix(preds: Predictions) -> None:
    """The clickable confusion matrix."""
    normalized = st.toggle("Row-normalised (share of each true class)", key="eval_normalized")
    fig = confusion_figure(preds.confusion(normalize=normalized), preds.classes, normalized=normalized)
    outline_cell(fig, preds.classes, st.session_state.get(TRUE_KEY), st.session_state.get(PRED_KEY))
    st.plotly_chart(fig, key=MATRIX_KEY, on_select=_on_matrix_select, selection_mode="points",
                    config={"displayModeBar": False})
    st.caption("Click a cell to see its images below.")


def _pairs(preds: Predictions) -> None:
    """Most confused pairs, each a button opening its gallery."""
    confused = preds.most_confused().head(10)
    if confused.empty:
        st.success("No confusions: every image is on the diagonal.")
        return
    pairs = {pair_label(row): (row["true"], row["predicted"]) for _, row in confused.iterrows()}
    st.pills("Most confused pairs (true → predicted)", list(pairs), key="eval_pair", on_change=_on_pair,
             args=(pairs,), format_func=md_escape, help="Choose a pair to see its images below.", wrap=True)


def _report(preds: Predictions) -> None:
    """Per-class precision / recall / F1."""
    st.markdown("**Per class**")
    st.dataframe(preds.report(), width="stretch", column_config={
        name: st.column_config.NumberColumn(name, format="%.2f") for name in ("precision", "recall", "f1")})


def _square_unit_axes(fig):
    """Both axes 0-100 % with the legend below, so the diagonal is a true diagonal and the plot keeps its width."""
    fig.update_xaxes(range=[0, 1.02], tickformat=".0%")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    fig.update_layout(legend={"orientation": "h", "y": -0.25}, height=380)
    return fig


def _calibration(loaded: Loaded, split: str) -> None:
    """Reliability diagram, ECE before/after, and accuracy vs coverage as the "not sure" threshold moves."""
    st.subheader("Calibration")
    st.caption("Does a 90 % answer come true 90 % of the time? Temperature scaling divides the logits by one number "
               "fitted on images the model did not train on; the 'not sure' threshold trades answers for accuracy.")
    preds = loaded.preds
    view = calibration_view(preds, loaded.label, loaded.predictor.ckpt.meta if loaded.predictor else None)
    answered = view.answered
    cols = st.columns(6)
    cols[0].metric("Temperature", f"{view.temperature:.2f}" if view.calibrated else "none",
                   help="Logits are divided by this before the softmax; above 1 softens over-confident answers.")
    cols[1].metric("ECE before", f"{view.ece_before:.3f}", help="Expected calibration error: the mean gap between "
                   "confidence and accuracy over confidence bins (0 is perfect).")
    cols[2].metric("ECE after", f"{view.ece_after:.3f}",
                   delta=f"{view.ece_after - view.ece_before:+.3f}" if view.calibrated else None, delta_color="inverse")
    cols[3].metric("'Not sure' below", f"{view.threshold:.0%}",
                   help="A top probability under this is answered 'not sure' with the two likeliest classes.")
    cols[4].metric("Answered here", f"{answered.share:.0%}",
                   help=f"Share of these {len(preds.targets)} images at or above the threshold.")
    cols[5].metric("Accuracy of answers", f"{answered.accuracy:.1%}" if answered.accuracy is not None else "–",
                   help="Accuracy on the answered images only.")
    st.caption(ece_note(loaded, view))
    if not view.calibrated:
        name = loaded.predictor.ckpt.name
        st.info(f"{md_escape(name)} is not calibrated: its confidences are the raw softmax. Fit a temperature and a "
                f"'not sure' threshold with `python -m dance calibrate --weights {name.replace('`', '')}` "
                "(add `--oof runs/cv/<name>/oof.csv` to fit on a cross-validation run).")
    if split == "all":
        st.caption("These images include the training set, so the diagram looks better than it should.")
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("**Reliability diagram**")
        st.plotly_chart(_square_unit_axes(reliability_figure(view.reliability)), key="eval_reliability",
                        config={"displayModeBar": False})
    with right:
        st.markdown("**Coverage vs accuracy** (the 'not sure' threshold)")
        fig = coverage_figure(coverage_curve(view.calibrated_probs, preds.targets), view.threshold)
        fig.update_xaxes(range=[0, 1.02])
        st.plotly_chart(fig, key="eval_coverage", config={"displayModeBar": False})
        st.caption("Each point is a threshold: images below it get 'not sure'. The marker is this model's threshold.")


def _cell_gallery(preds: Predictions, cam: tuple[Predictor, CheckpointRef] | None) -> None:
    """Selectboxes (driven by clicks too) and the gallery of the chosen cell."""
    st.subheader("Images in a cell")
    left, right = st.columns(2)
    true = left.selectbox("True class", preds.classes, key=TRUE_KEY)
    predicted = right.selectbox("Predicted class", preds.classes, key=PRED_KEY)
    cell = preds.cell(true, predicted)
    kind = "correct" if true == predicted else "misclassified"
    st.markdown(f"**{len(cell)}** {kind} image(s): true **{md_escape(true)}**, predicted **{md_escape(predicted)}** — "
                "highest loss first.")
    gallery(cell, key=f"eval_cell_{true}_{predicted}", empty="No images in this cell.", cam=cam)


def render() -> None:
    """Draw the Evaluate page."""
    st.title("Evaluate")
    st.caption("Where does the model go wrong? Pick a checkpoint and a labelled split; click the matrix to browse.")
    with page_errors():
        # Out-of-fold predictions are the honest view when a CV run exists (the shipped default was trained
        # on every labelled image, so it has no hold-out of its own).
        first = "oof" if oof_runs() else "holdout"
        split = st.segmented_control("Labelled split", list(SPLITS), format_func=SPLITS.get, key="eval_split",
                                     default=first, required=True) or first
        with st.sidebar:
            show_cam = st.toggle("Grad-CAM in galleries", key="eval_cam",
                                 help="Show each gallery image as a heat map of where the model looked for the class "
                                      "it predicted.")
        loaded = _load(split)
        if loaded is None:
            return
        preds = loaded.preds
        _metrics(preds, loaded.label, split)
        _sync_defaults(preds, f"{split}|{loaded.label}|{loaded.ref.mtime if loaded.ref else ''}")
        left, right = st.columns([3, 2], gap="large")
        with left:
            _matrix(preds)
        with right:
            _report(preds)
            _pairs(preds)
        cam = _cam_source(loaded, show_cam)
        if cam is not None:
            st.caption("Galleries show Grad-CAM overlays for the predicted class: red is where "
                       f"{md_escape(cam[1].name)} found the most evidence for it.")
        _cell_gallery(preds, cam)
        st.subheader("Top losses")
        k = st.slider("How many", 4, 48, 12, step=4, key="eval_top_k")
        st.caption("The images the model finds hardest (largest loss on the true class), right or wrong.")
        gallery(preds.top_losses(k), key="eval_top", per_page=k, cam=cam)
        _calibration(loaded, split)


if __name__ == "__main__":
    render()

"""Evaluate page: metrics, per-class report, a clickable confusion matrix and galleries of where the model goes wrong."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dance.evaluate import evaluate_checkpoint
from dance.interpret import Predictions
from dance.plots import confusion_figure
from dance.predict import Predictor
from dance.ui.common import checkpoint_picker, data_dir_or_error, gallery, load_predictor, page_errors

SPLITS = {
    "holdout": "Hold-out of the checkpoint",
    "all": "All labelled images (optimistic)",
    "oof": "Cross-validation out-of-fold",
}
MATRIX_KEY = "eval_matrix"
TRUE_KEY, PRED_KEY = "eval_true", "eval_pred"


@st.cache_data(show_spinner="Classifying the labelled images (once; cached afterwards)…", max_entries=16)
def _checkpoint_predictions(_predictor: Predictor, stem: str, mtime: float, split: str,
                            data_dir: str) -> tuple[Predictions, str]:
    """Predictions of a checkpoint on a split, cached per (checkpoint path, mtime, split, data folder)."""
    return evaluate_checkpoint(stem, data_dir, split, predictor=_predictor)


def _cv_module():
    """dance.cv when it is available (it may not be in older checkouts)."""
    try:
        from dance import cv
    except ImportError:
        return None
    return cv


@st.cache_data(show_spinner="Reading out-of-fold predictions…", max_entries=16)
def _oof_predictions(path: str, mtime: float) -> Predictions:
    """Out-of-fold predictions of a cross-validation run, cached per (file, mtime)."""
    return _cv_module().load_oof(path)


def oof_runs() -> list[Path]:
    """Cross-validation runs with out-of-fold predictions (empty when dance.cv is missing or none were made)."""
    cv = _cv_module()
    return [Path(p) for p in cv.list_oof_runs()] if cv is not None else []


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


def _load(split: str) -> tuple[Predictions, str] | None:
    """Predictions for the chosen split, or None after showing why there are none."""
    if split == "oof":
        runs = oof_runs()
        if not runs:
            st.info("No cross-validation run found yet. Make one with `python -m dance cv` "
                    "(it writes runs/cv/<name>/oof.csv), then come back.")
            return None
        path = st.selectbox("Cross-validation run", runs, key="eval_oof_run",
                            format_func=lambda p: f"{Path(p).parent.name} ({Path(p).name})")
        path = Path(path)
        return _oof_predictions(str(path), path.stat().st_mtime), f"out-of-fold predictions of {path.parent.name}"
    folder, problem = data_dir_or_error()
    if folder is None:
        st.error(problem)
        return None
    ref = checkpoint_picker("Checkpoint", key="eval_model")
    if ref is None:
        return None
    predictor = load_predictor(ref)
    return _checkpoint_predictions(predictor, ref.stem, ref.mtime, split, str(folder))


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
    st.caption(f"Evaluated on: {label}.")
    if split == "all":
        st.warning("Optimistic: 'all labelled images' includes the images this model was trained on. "
                   "Use the hold-out or a cross-validation run for an honest estimate.")


def _sync_defaults(preds: Predictions) -> None:
    """Give the cell selectboxes valid values before they are drawn (classes change with the checkpoint)."""
    default = pair_options(preds)
    for key, value in zip((TRUE_KEY, PRED_KEY), default):
        if st.session_state.get(key) not in preds.classes:
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
             args=(pairs,), help="Choose a pair to see its images below.", wrap=True)


def _report(preds: Predictions) -> None:
    """Per-class precision / recall / F1."""
    st.markdown("**Per class**")
    st.dataframe(preds.report(), width="stretch", column_config={
        name: st.column_config.NumberColumn(name, format="%.2f") for name in ("precision", "recall", "f1")})


def _cell_gallery(preds: Predictions) -> None:
    """Selectboxes (driven by clicks too) and the gallery of the chosen cell."""
    st.subheader("Images in a cell")
    left, right = st.columns(2)
    true = left.selectbox("True class", preds.classes, key=TRUE_KEY)
    predicted = right.selectbox("Predicted class", preds.classes, key=PRED_KEY)
    cell = preds.cell(true, predicted)
    kind = "correct" if true == predicted else "misclassified"
    st.markdown(f"**{len(cell)}** {kind} image(s): true **{true}**, predicted **{predicted}** — highest loss first.")
    gallery(cell, key=f"eval_cell_{true}_{predicted}", empty="No images in this cell.")


def render() -> None:
    """Draw the Evaluate page."""
    st.title("Evaluate")
    st.caption("Where does the model go wrong? Pick a checkpoint and a labelled split; click the matrix to browse.")
    with page_errors():
        split = st.segmented_control("Labelled split", list(SPLITS), format_func=SPLITS.get, key="eval_split",
                                     default="holdout", required=True)
        loaded = _load(split or "holdout")
        if loaded is None:
            return
        preds, label = loaded
        _metrics(preds, label, split)
        _sync_defaults(preds)
        left, right = st.columns([3, 2], gap="large")
        with left:
            _matrix(preds)
        with right:
            _report(preds)
            _pairs(preds)
        _cell_gallery(preds)
        st.subheader("Top losses")
        k = st.slider("How many", 4, 48, 12, step=4, key="eval_top_k")
        st.caption("The images the model finds hardest (largest loss on the true class), right or wrong.")
        gallery(preds.top_losses(k), key="eval_top", per_page=k)


if __name__ == "__main__":
    render()

"""Label issues page: review, one by one, training images whose label the out-of-fold predictions dispute.

Each decision (keep / relabel / remove) goes into a corrections table exported as CSV (download,
or an atomic write to runs/label_corrections.csv); the data set itself is never edited.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dance import paths
from dance.data.images import load_image
from dance.errors import DanceError
from dance.inference.predict import Predictor
from dance.trust.label_issues import (
    ACTIONS,
    CORRECTIONS_NAME,
    corrections_csv,
    corrections_frame,
    find_label_issues,
    write_corrections,
)
from dance.ui.cache import (
    CheckpointRef,
    file_cam,
    fold_models,
    jpeg_bytes,
    load_oof,
    load_predictor,
    oof_runs,
    run_label,
    served_run_first,
    thumbnail,
)
from dance.ui.widgets import checkpoint_picker, md_escape, page_errors, percent

INDEX_KEY = "li_index"
DECISIONS_KEY = "li_decisions"
VIEW_SIDE = 448
WEAK_SHARE = 0.25  # flagging more than this share of the data set says more about the model than the labels


def corrections_path() -> Path:
    """Where 'Save' writes the corrections: label_corrections.csv in the runs folder ($DANCE_RUNS_DIR or runs/)."""
    return paths.runs_root() / CORRECTIONS_NAME


@st.cache_data(show_spinner="Ranking likely label issues…", max_entries=16)
def _issues(path: str, mtime: float) -> tuple[pd.DataFrame, int, list[str], float]:
    """Flagged images of an oof.csv (most disputed first), the number of images, the classes and the OOF accuracy."""
    preds = load_oof(path)
    return find_label_issues(preds), len(preds.targets), preds.classes, float(preds.metrics()["accuracy"])


@st.cache_data(show_spinner=False, max_entries=64)
def _photo(path: str, mtime: float) -> bytes | None:
    """The image as a JPEG fitting VIEW_SIDE (None when it cannot be read)."""
    try:
        return jpeg_bytes(thumbnail(load_image(path, name=Path(path).name), VIEW_SIDE))
    except DanceError:
        return None


def _mtime(path: str) -> float:
    """Modification time of a file (0 when missing), the cache key of its derived images."""
    p = Path(path)
    return p.stat().st_mtime if p.exists() else 0.0


def _decisions(run: Path) -> dict[str, tuple[str, str | None]]:
    """This session's decisions for a run: issue path -> (action, new label)."""
    store = st.session_state.setdefault(DECISIONS_KEY, {})
    return store.setdefault(str(run), {})


def _decide(run: Path, path: str, action: str, label: str | None, count: int) -> None:
    """Record a decision and move to the next image (a button callback, so the page redraws once)."""
    _decisions(run)[path] = (action, label)
    st.session_state[INDEX_KEY] = min(st.session_state.get(INDEX_KEY, 0) + 1, count - 1)


def _step(delta: int, count: int) -> None:
    """Previous / next image."""
    st.session_state[INDEX_KEY] = max(0, min(st.session_state.get(INDEX_KEY, 0) + delta, count - 1))


def _pick_run() -> Path | None:
    """Selectbox over the CV runs; None after explaining how to make one."""
    runs = oof_runs()
    if not runs:
        st.info("No cross-validation run found yet. Label issues are found from out-of-fold predictions: run "
                "`python -m dance cv` (it writes runs/cv/<name>/oof.csv), then come back.")
        return None
    runs = served_run_first(runs)  # the served model's own run first, not the newest file
    return Path(st.selectbox("Cross-validation run", runs, key="li_run", format_func=run_label))


@st.cache_data(show_spinner=False, max_entries=16)
def _fold_models(path: str, mtime: float) -> dict[str, str]:
    """Image name -> stem of the fold model that made its out-of-fold prediction (when the run saved them)."""
    return {name: str(stem) for name, stem in fold_models(path).items()}


def explainer(run: Path, image: str, fallback: tuple[Predictor, CheckpointRef] | None
              ) -> tuple[Predictor, CheckpointRef, bool] | None:
    """(model, its ref, whether it is the fold model behind the suggestion) to draw Grad-CAM for `image` with.

    The suggestion comes from the fold model that never saw the image; only when the run kept no fold models is
    another checkpoint used, and then every caption says so.
    """
    stem = _fold_models(str(run), run.stat().st_mtime).get(image)
    if stem is not None:
        times = [p.stat().st_mtime for p in (Path(stem + ".json"), Path(stem + ".safetensors"))]
        ref = CheckpointRef(stem, max(times))
        return load_predictor(ref), ref, True
    return (*fallback, False) if fallback is not None else None


def cam_caption(title: str, class_name: str, model: str, fold: bool, oof_prob: float) -> str:
    """Caption of an overlay: which model drew it, and only the out-of-fold number when it is that model's."""
    if fold:
        return (f"{title}: where {md_escape(model)} (the fold model behind the suggestion) sees "
                f"{md_escape(class_name)} ({percent(oof_prob)})")
    model, class_name = md_escape(model), md_escape(class_name)
    return f"{title}: where {model} sees {class_name} — {model} trained on this image; the percentages come from " \
           "the fold models"


def _cam_column(cam: tuple[Predictor, CheckpointRef, bool] | None, path: str, class_name: str, title: str,
                oof_prob: float) -> None:
    """One Grad-CAM overlay with its caption, or why there is none."""
    if cam is None:
        return
    predictor, ref, fold = cam
    if class_name not in predictor.classes:
        st.caption(f"{md_escape(ref.name)} does not know the class {md_escape(class_name)}.")
        return
    found = file_cam(predictor, ref, path, class_name, side=VIEW_SIDE)
    if found is None:
        st.warning("cannot be decoded.")
    else:
        st.image(found[0], caption=cam_caption(title, class_name, ref.name, fold, oof_prob), width="stretch")


def _review(run: Path, issues: pd.DataFrame, classes: list[str], fallback: tuple[Predictor, CheckpointRef] | None,
            show_cam: bool) -> None:
    """The current issue: photo, labels, Grad-CAM for both classes, and the decision buttons (with shortcuts)."""
    count = len(issues)
    index = min(st.session_state.get(INDEX_KEY, 0), count - 1)
    st.session_state[INDEX_KEY] = index
    row = issues.iloc[index]
    decisions = _decisions(run)
    done = decisions.get(row["path"])
    status = f" — decided: **{done[0]}**" + (f" as {md_escape(done[1])}" if done and done[0] == "relabel" else "") \
        if done else ""
    with st.container(horizontal=True, vertical_alignment="center"):
        st.button("Previous", key="li_prev", icon=":material/arrow_back:", disabled=index == 0,
                  on_click=_step, args=(-1, count), shortcut="Left")
        st.button("Next", key="li_next", icon=":material/arrow_forward:", disabled=index == count - 1,
                  on_click=_step, args=(1, count), shortcut="Right")
        st.markdown(f"Image **{index + 1}** of {count}: {md_escape(row['image'])}{status}", width="stretch")

    with st.container(border=True):
        cols = st.columns(3)
        with cols[0]:
            photo = _photo(row["path"], _mtime(row["path"]))
            if photo is None:
                st.warning(f"{md_escape(row['image'])}: cannot be read.")
            else:
                st.image(photo, caption=md_escape(row["image"]), width="stretch")
            st.markdown(f"Given label: **{md_escape(row['given'])}** ({percent(row['self_confidence'])})  \n"
                        f"Model suggests: **{md_escape(row['suggested'])}** ({percent(row['suggested_prob'])})")
            st.caption("Both percentages: the out-of-fold prediction, by a fold model that never saw this image.")
        cam = explainer(run, str(row["image"]), fallback) if show_cam else None
        with cols[1]:
            _cam_column(cam, row["path"], row["given"], "given label", row["self_confidence"])
        with cols[2]:
            _cam_column(cam, row["path"], row["suggested"], "suggested label", row["suggested_prob"])

        buttons = st.columns([1, 2, 1, 1], vertical_alignment="bottom")
        buttons[0].button(f"Keep {row['given']}", key="li_keep", icon=":material/check:", shortcut="K",
                          on_click=_decide, args=(run, row["path"], "keep", None, count))
        options = [c for c in classes if c != row["given"]]
        new_label = buttons[1].selectbox("Relabel as", options, index=options.index(row["suggested"]),
                                         key=f"li_label_{index}")
        # R is Streamlit's own rerun key (reserved), so relabel is L
        buttons[2].button("Relabel", key="li_relabel", icon=":material/edit:", type="primary", shortcut="L",
                          on_click=_decide, args=(run, row["path"], "relabel", new_label, count))
        buttons[3].button("Remove", key="li_remove", icon=":material/delete:", shortcut="X",
                          on_click=_decide, args=(run, row["path"], "remove", None, count))
    st.caption("Keys: K keep · L relabel · X remove · ← → previous / next.")


def _export(run: Path, issues: pd.DataFrame) -> None:
    """The decisions so far, as a table, a CSV download and a file in runs/."""
    frame = corrections_frame(issues, _decisions(run))
    st.subheader(f"Corrections ({len(frame)} of {len(issues)} reviewed)")
    if frame.empty:
        st.caption("Decisions appear here as you review; nothing is changed in the data set.")
        return
    st.dataframe(frame, hide_index=True, width="stretch")
    left, right = st.columns(2)
    left.download_button("Download label_corrections.csv", corrections_csv(frame).encode("utf-8"),
                         "label_corrections.csv", "text/csv", key="li_download", icon=":material/download:")
    if right.button(f"Save to {corrections_path()}", key="li_save", icon=":material/save:"):
        written = write_corrections(frame, corrections_path())
        st.success(f"Wrote {len(frame)} rows to {md_escape(written)}. The data set was not changed.")


def render() -> None:
    """Draw the Label issues page."""
    st.title("Label issues")
    st.caption("Training images whose label the model, predicting them out of fold, confidently disputes "
               f"(confident learning). Decide for each: {', '.join(ACTIONS)}. Nothing in the data set is edited.")
    with page_errors():
        with st.sidebar:
            ref = checkpoint_picker("Grad-CAM model (when the run kept no fold models)", key="li_model")
            show_cam = st.toggle("Grad-CAM overlays", value=True, key="li_cam",
                                 help="Where the model looks for the given and the suggested class.")
        run = _pick_run()
        if run is None:
            return
        issues, total, classes, accuracy = _issues(str(run), run.stat().st_mtime)
        if issues.empty:
            st.success(f"No likely label issues among the {total} images of this run.")
            return
        st.markdown(f"**{len(issues)}** of {total} images look mislabelled, most disputed first.")
        if len(issues) > WEAK_SHARE * total:
            st.warning(f"This run's out-of-fold accuracy is only {accuracy:.0%}, so most of these flags are likely the "
                       "model's own mistakes rather than wrong labels. A stronger cross-validation run gives a "
                       "shorter, more trustworthy list.")
        with st.expander("All flagged images", expanded=False):
            st.dataframe(issues.drop(columns="path"), hide_index=True, width="stretch", column_config={
                name: st.column_config.NumberColumn(name, format="%.2f")
                for name in ("self_confidence", "suggested_prob", "margin")})
        fallback = (load_predictor(ref), ref) if ref is not None and show_cam else None
        _review(run, issues, classes, fallback, show_cam)
        _export(run, issues)


if __name__ == "__main__":
    render()

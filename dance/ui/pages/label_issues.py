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
    jpeg_bytes,
    load_oof,
    load_predictor,
    oof_runs,
    run_label,
    thumbnail,
)
from dance.ui.widgets import checkpoint_picker, md_escape, page_errors

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
    return Path(st.selectbox("Cross-validation run", runs, key="li_run", format_func=run_label))


def _cam_column(predictor: Predictor | None, ref: CheckpointRef | None, path: str, class_name: str, title: str) -> None:
    """One Grad-CAM overlay with its caption, or why there is none."""
    if predictor is None or ref is None:
        return
    if class_name not in predictor.classes:
        st.caption(f"{md_escape(ref.name)} does not know the class {md_escape(class_name)}.")
        return
    found = file_cam(predictor, ref, path, class_name, side=VIEW_SIDE)
    if found is None:
        st.warning("cannot be decoded.")
    else:
        st.image(found[0], caption=f"{title}: where {ref.name} sees {class_name} ({found[2]:.0%})", width="stretch")


def _review(run: Path, issues: pd.DataFrame, classes: list[str], predictor: Predictor | None,
            ref: CheckpointRef | None) -> None:
    """The current issue: photo, labels, Grad-CAM for both classes, and the decision buttons."""
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
                  on_click=_step, args=(-1, count))
        st.button("Next", key="li_next", icon=":material/arrow_forward:", disabled=index == count - 1,
                  on_click=_step, args=(1, count))
        st.markdown(f"Image **{index + 1}** of {count}: {md_escape(row['image'])}{status}", width="stretch")

    with st.container(border=True):
        cols = st.columns(3)
        with cols[0]:
            photo = _photo(row["path"], _mtime(row["path"]))
            if photo is None:
                st.warning(f"{md_escape(row['image'])}: cannot be read.")
            else:
                st.image(photo, caption=row["image"], width="stretch")
            st.markdown(f"Given label: **{md_escape(row['given'])}** ({row['self_confidence']:.0%})  \n"
                        f"Model suggests: **{md_escape(row['suggested'])}** ({row['suggested_prob']:.0%})")
        with cols[1]:
            _cam_column(predictor, ref, row["path"], row["given"], "given label")
        with cols[2]:
            _cam_column(predictor, ref, row["path"], row["suggested"], "suggested label")

        buttons = st.columns([1, 2, 1, 1], vertical_alignment="bottom")
        buttons[0].button(f"Keep {row['given']}", key="li_keep", icon=":material/check:",
                          on_click=_decide, args=(run, row["path"], "keep", None, count))
        options = [c for c in classes if c != row["given"]]
        new_label = buttons[1].selectbox("Relabel as", options, index=options.index(row["suggested"]),
                                         key=f"li_label_{index}")
        buttons[2].button("Relabel", key="li_relabel", icon=":material/edit:", type="primary",
                          on_click=_decide, args=(run, row["path"], "relabel", new_label, count))
        buttons[3].button("Remove", key="li_remove", icon=":material/delete:",
                          on_click=_decide, args=(run, row["path"], "remove", None, count))


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
        st.success(f"Wrote {len(frame)} rows to {written}. The data set was not changed.")


def render() -> None:
    """Draw the Label issues page."""
    st.title("Label issues")
    st.caption("Training images whose label the model, predicting them out of fold, confidently disputes "
               f"(confident learning). Decide for each: {', '.join(ACTIONS)}. Nothing in the data set is edited.")
    with page_errors():
        with st.sidebar:
            ref = checkpoint_picker("Model for Grad-CAM", key="li_model")
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
        predictor = load_predictor(ref) if ref is not None and show_cam else None
        _review(run, issues, classes, predictor, ref)
        _export(run, issues)


if __name__ == "__main__":
    render()

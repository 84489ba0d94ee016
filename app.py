"""Streamlit entry point: page config and navigation over the pages in dance/ui/pages (run: `make run`)."""

import importlib.util
from pathlib import Path

import streamlit as st

from dance.ui.icon import app_icon

# The slim serving install (requirements-serve.txt) has no torch: Predict and Data set still work, the pages that
# train or score with torch say so in one sentence instead of failing on their imports.
FULL_INSTALL = importlib.util.find_spec("torch") is not None


def page(path: str, title: str, icon: str, needs_torch: bool = True, **options) -> st.Page:
    """The page at `path`, or, without torch, a page saying it needs the full install."""
    if FULL_INSTALL or not needs_torch:
        return st.Page(path, title=title, icon=icon, **options)

    def needs_full_install():
        st.info(f"{title} needs the full install (`pip install -r requirements.txt`); this slim install serves "
                "Predict and Data set only.")

    return st.Page(needs_full_install, title=title, icon=icon, url_path=Path(path).stem, **options)


# A drawn icon, not ":material/...": Streamlit fetches material favicons from fonts.gstatic.com (fails offline).
st.set_page_config(page_title="Dance form classifier", page_icon=app_icon(), layout="wide")
st.navigation([
    page("dance/ui/pages/predict.py", "Predict", ":material/photo_camera:", needs_torch=False, default=True),
    page("dance/ui/pages/evaluate.py", "Evaluate", ":material/grid_on:"),
    page("dance/ui/pages/label_issues.py", "Label issues", ":material/rule:"),
    page("dance/ui/pages/augment.py", "Augmentation preview", ":material/auto_awesome:"),
    page("dance/ui/pages/train.py", "Train", ":material/model_training:"),
    page("dance/ui/pages/your_data.py", "Your data", ":material/add_photo_alternate:"),
    page("dance/ui/pages/dataset.py", "Data set", ":material/photo_library:", needs_torch=False),
]).run()

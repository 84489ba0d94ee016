"""Streamlit entry point: page config and navigation over the pages in dance/ui/pages (run: `make run`)."""

import streamlit as st

from dance.ui.icon import app_icon

# A drawn icon, not ":material/...": Streamlit fetches material favicons from fonts.gstatic.com (fails offline).
st.set_page_config(page_title="Dance form classifier", page_icon=app_icon(), layout="wide")
st.navigation([
    st.Page("dance/ui/pages/predict.py", title="Predict", icon=":material/photo_camera:", default=True),
    st.Page("dance/ui/pages/evaluate.py", title="Evaluate", icon=":material/grid_on:"),
    st.Page("dance/ui/pages/label_issues.py", title="Label issues", icon=":material/rule:"),
    st.Page("dance/ui/pages/augment.py", title="Augmentation preview", icon=":material/auto_awesome:"),
    st.Page("dance/ui/pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("dance/ui/pages/your_data.py", title="Your data", icon=":material/add_photo_alternate:"),
    st.Page("dance/ui/pages/dataset.py", title="Data set", icon=":material/photo_library:"),
]).run()

"""Augmentation preview: N variants of one image produced by exactly the training pipeline (minus normalisation)."""

from __future__ import annotations

from dataclasses import asdict, fields

import streamlit as st

from dance.config import AugmentConfig
from dance.data.images import UPLOAD_TYPES, load_image, resize_shorter
from dance.data.labels import read_labels
from dance.data.tensors import to_pil, to_uint8_tensor
from dance.errors import DanceError
from dance.models.spec import cache_side
from dance.training.transforms import PRESETS, augment_preview
from dance.ui.cache import jpeg_bytes, thumbnail
from dance.ui.widgets import data_dir_or_error, md_escape, page_errors, upload_help

SIZES = (64, 96, 128, 160, 192, 224, 240, 260)
PRESET_HELP = {
    "none": "resize only",
    "article": "the seed article's Keras-style rotation, shift, zoom and flip",
    "strong": "random resized crop, flip, rotation/shift, TrivialAugment and colour jitter",
}
# (field, label, min, max, step, presets where it has an effect, help)
SLIDERS = (
    ("crop_scale", "Crop scale (smallest area kept)", 0.05, 1.0, 0.05, ("strong",), "RandomResizedCrop lower bound."),
    ("rotation", "Rotation (degrees)", 0.0, 45.0, 1.0, ("article", "strong"), "Random rotation up to ± this."),
    ("shift", "Shift (fraction of side)", 0.0, 0.4, 0.01, ("article", "strong"), "Random translation."),
    ("zoom", "Zoom (±fraction)", 0.0, 0.5, 0.01, ("article",), "Random scale (article preset)."),
    ("hflip", "Horizontal flip probability", 0.0, 1.0, 0.05, ("article", "strong"), ""),
    ("color", "Colour jitter", 0.0, 0.8, 0.05, ("article", "strong"), "Brightness / contrast / saturation."),
    ("erasing", "Random erasing probability", 0.0, 1.0, 0.05, ("article", "strong"), "Blanks a random patch."),
)


def key_of(name: str) -> str:
    """Session-state key of an AugmentConfig field's widget."""
    return f"aug_{name}"


def _reset() -> None:
    """Put every control back to the training defaults."""
    for name, value in asdict(AugmentConfig()).items():
        st.session_state[key_of(name)] = value
    st.session_state["aug_seed"] = 0


def config_from_state(state) -> AugmentConfig:
    """AugmentConfig from the widgets' session-state values (defaults for missing ones)."""
    base = asdict(AugmentConfig())
    return AugmentConfig(**{f.name: state.get(key_of(f.name), base[f.name]) for f in fields(AugmentConfig)})


@st.cache_data(show_spinner="Augmenting…", max_entries=64)
def variants(source: str | bytes, name: str, aug: AugmentConfig, size: int, count: int,
             seed: int) -> tuple[bytes, list[bytes]]:
    """(original thumbnail, `count` augmented variants) as JPEG bytes; variant i is reproducible from seed + i.

    The image is cached as training caches it (shorter side: the run spec's cache side), then fed to augment_preview.
    """
    img = load_image(source, name=name)
    cached = to_uint8_tensor(resize_shorter(img, cache_side(size)))
    out = augment_preview(cached, aug, size, count, seed)
    return jpeg_bytes(thumbnail(img, 384)), [jpeg_bytes(to_pil(t), quality=90) for t in out]


def _source() -> tuple[str | bytes, str] | None:
    """The image to augment: a training image or an upload."""
    folder, problem = data_dir_or_error()
    options = ["Training image", "Upload"] if folder is not None else ["Upload"]
    how = st.radio("Image", options, horizontal=True, key="aug_source")
    if how == "Upload":
        if folder is None:
            st.caption(f"No data set found, so only uploads: {md_escape(problem)}")
        upload = st.file_uploader("An image", type=list(UPLOAD_TYPES), key="aug_upload", help=upload_help())
        return (upload.getvalue(), upload.name) if upload is not None else None
    table = read_labels(folder / "train.csv", folder / "train")
    frame = table.frame
    if frame.empty:
        st.warning("The data set lists no usable training image.")
        return None
    labels = dict(zip(frame["image"], frame["label"]))
    name = st.selectbox("Training image", list(frame["image"]), key="aug_image",
                        format_func=lambda n: f"{n} ({labels[n]})")
    return str(folder / "train" / name), name


def _controls() -> tuple[AugmentConfig, int, int, int]:
    """Sidebar widgets for every AugmentConfig field plus size, count and seed."""
    defaults = AugmentConfig()
    with st.sidebar:
        st.header("Augmentation")
        st.session_state.setdefault(key_of("preset"), defaults.preset)
        preset = st.selectbox("Preset", PRESETS, key=key_of("preset"),
                              format_func=lambda p: f"{p} — {PRESET_HELP[p]}")
        for name, label, low, high, step, presets, help_text in SLIDERS:
            st.session_state.setdefault(key_of(name), float(getattr(defaults, name)))
            st.slider(label, low, high, step=step, key=key_of(name), help=help_text or None,
                      disabled=preset not in presets)
        st.session_state.setdefault(key_of("trivial_augment"), defaults.trivial_augment)
        st.toggle("TrivialAugment", key=key_of("trivial_augment"), disabled=preset != "strong",
                  help="One random operation of random strength per image (strong preset).")
        st.divider()
        size = st.select_slider("Image size", SIZES, value=224, key="aug_size")
        count = st.slider("Variants", 1, 24, 8, key="aug_count")
        st.session_state.setdefault("aug_seed", 0)
        seed = int(st.number_input("Seed (variant i uses seed + i)", 0, 10_000_000, step=1, key="aug_seed"))
        st.button("Reset to training defaults", on_click=_reset, key="aug_reset")
    return config_from_state(st.session_state), int(size), int(count), seed


def render() -> None:
    """Draw the Augmentation preview page."""
    st.title("Augmentation preview")
    st.caption("What the model sees during training: the same code path as training, minus normalisation.")
    with page_errors():
        aug, size, count, seed = _controls()
        source = _source()
        if source is None:
            st.info("Choose or upload an image.")
            return
        data, name = source
        try:
            original, images = variants(data, name, aug, size, count, seed)
        except DanceError as exc:
            st.error(md_escape(exc))
            return
        left, right = st.columns([1, 3], gap="large")
        with left:
            st.markdown("**Original**")
            st.image(original, caption=name, width="stretch")
            st.caption(f"Preset **{aug.preset}**, {size}×{size} px, seeds {seed}–{seed + count - 1}.")
        with right:
            st.markdown(f"**{count} augmented variant(s)** of {md_escape(name)}")
            per_row = 4
            for start in range(0, count, per_row):
                row = st.columns(per_row)
                for i in range(start, min(count, start + per_row)):
                    row[i - start].image(images[i], caption=f"seed {seed + i}", width="stretch")


if __name__ == "__main__":
    render()

"""Untrusted text as Markdown: one escape (dance.markup.md_escape) makes any string render literally; the CV report
escapes class names; the app binds to 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from dance.markup import JOINER, md_escape
from dance.training.cv import report_markdown

ROOT = Path(__file__).resolve().parents[1]
PUNCTUATION = set("\\`*_{}[]()#+-.!|<>~$:@&=\"'^%")


@given(st.text(max_size=60))
@settings(max_examples=500, deadline=None)
def test_every_markdown_character_is_escaped_and_nothing_else_changes(text):
    out = md_escape(text)
    assert "\n" not in out and "\r" not in out
    unescaped, i = [], 0
    while i < len(out):  # undo the escapes and joiners: what is left must be the input (newlines as spaces)
        if out[i] == JOINER:
            i += 1
        elif out[i] == "\\":
            assert out[i + 1] in PUNCTUATION
            unescaped.append(out[i + 1])
            i += 2
        else:
            assert out[i] not in PUNCTUATION, (text, out)
            unescaped.append(out[i])
            i += 1
    assert "".join(unescaped) == " ".join(text.replace(JOINER, "").splitlines())


def test_urls_and_addresses_cannot_auto_link():
    for text in ("see https://example.com/a_b", "WWW.example.com", "me@example.com", ":red[x] :material/home:"):
        decoded = re.sub(r"\\(.)", r"\1", md_escape(text))  # the text remark-gfm searches for auto-links
        assert not re.search(r"https?://|www\.|[-.\w+]@", decoded, re.IGNORECASE), decoded
        assert decoded.replace(JOINER, "") == text  # ... which reads as the original
    assert not re.search(r":\w+\[", md_escape(":red[x]"))


def test_cv_report_escapes_class_names():
    hostile = "![t](http://127.0.0.1:9/x.png)"
    fold = {"repeat": 0, "fold": 0, "images": 2, "accuracy": 1.0, "macro_f1": 1.0, "weighted_f1": 1.0,
            "train_seconds": 1}
    pm = {"mean": 1.0, "std": 0.0}
    summary = {"name": "<b>run</b>", "model": "seed-cnn", "image_size": 64, "k": 2, "repeats": 1, "tta": False,
               "images": 4, "device": "cpu", "train_seconds_total": 1, "created": "now", "accuracy": pm,
               "macro_f1": pm, "weighted_f1": pm, "folds": [fold], "per_class_f1": {hostile: 1.0, "b|c": 0.5}}
    text = report_markdown(summary)
    assert hostile not in text and "<b>" not in text and "b|c" not in text
    assert md_escape(hostile) in text and "| b\\|c |" in text


def test_app_listens_on_localhost_only_by_default():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^ADDRESS \?= 127\.0\.0\.1$", makefile, re.M)
    assert "--server.address $(ADDRESS)" in makefile

"""Untrusted weights and settings: nothing is unpickled, damaged checkpoints and states are refused with a message,
and the app's security settings stay on. (Basic checkpoint refusals live in test_checkpoint.py.)"""

from __future__ import annotations

import ast
import json
import re
import struct
import tomllib
from pathlib import Path

import pytest
from helpers import copy_checkpoint
from safetensors.torch import save as save_safetensors_bytes

from dance.config import TrainConfig
from dance.data.images import MAX_BYTES
from dance.errors import CheckpointError
from dance.models import checkpoint
from dance.models.spec import resolve_run_spec
from dance.training.train import build_state, load_training_state, save_training_state, state_paths

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "dance").rglob("*.py"), *ROOT.glob("*.py"), *(ROOT / "bench").glob("*.py")])


def edit_sidecar(stem: Path, **changes) -> None:
    meta = json.loads(stem.with_suffix(".json").read_text())
    meta.update(changes)
    stem.with_suffix(".json").write_text(json.dumps(meta))


def calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


FORBIDDEN_CALLS = ("pickle.load", "pickle.loads", "torch.jit.load", "read_pickle", "eval", "exec", "dill.load")


def offences_in(source: str, name: str) -> list[str]:
    """Unpickling or code-executing calls in one file's source."""
    tree = ast.parse(source, filename=name)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            if any(n.split(".")[0] in ("pickle", "cPickle", "dill", "joblib", "shelve", "marshal") for n in names):
                found.append(f"{name}:{node.lineno} imports a pickle module")
    for node, func in calls(tree):
        keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
        if func.endswith("torch.load") and keywords.get("weights_only") != "True":
            found.append(f"{name}:{node.lineno} torch.load without weights_only=True")
        if func in ("np.load", "numpy.load") and keywords.get("allow_pickle", "False") != "False":
            found.append(f"{name}:{node.lineno} np.load with allow_pickle")
        if func in FORBIDDEN_CALLS or func.endswith(tuple("." + f for f in FORBIDDEN_CALLS if "." in f)):
            found.append(f"{name}:{node.lineno} calls {func}")
    return found


def test_sources_never_unpickle_or_exec():
    assert len(SOURCES) > 10
    assert [o for path in SOURCES for o in offences_in(path.read_text(), path.name)] == []


def test_the_source_check_fires():
    """The checker above really flags offences (guards against a vacuous pass)."""
    bad = ("import pickle\nx = torch.load('a.pt')\ny = np.load('b', allow_pickle=True)\n"
           "z = torch.load('c', weights_only=False)\neval('1')\nmodel.eval()\nok = torch.load('d', weights_only=True)\n")
    found = offences_in(bad, "bad.py")
    assert [f.split(":")[1].split()[0] for f in found] == ["1", "2", "3", "4", "5"]


def test_safetensors_header_claiming_huge_size(tiny_checkpoint, tmp_path):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path, "c")
    data = stem.with_suffix(".safetensors").read_bytes()
    stem.with_suffix(".safetensors").write_bytes(struct.pack("<Q", 2**62) + data[8:])
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        checkpoint.load(stem)


def test_safetensors_offsets_past_end_of_file(tiny_checkpoint, tmp_path):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path, "c")
    data = stem.with_suffix(".safetensors").read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    key = next(k for k in header if k != "__metadata__")
    header[key]["data_offsets"][1] += 10**9
    text = json.dumps(header).encode()
    stem.with_suffix(".safetensors").write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size:])
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        checkpoint.load(stem)


def test_pickle_renamed_safetensors_refused(tmp_path, tiny_checkpoint):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path, "c")
    stem.with_suffix(".safetensors").write_bytes(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94.")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        checkpoint.load(stem)


def test_nan_weights_refused(tiny_checkpoint, tmp_path):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path, "c")
    ckpt = checkpoint.load(stem)
    state = {k: v.clone() for k, v in ckpt.model.state_dict().items()}
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[0] = float("nan")
    stem.with_suffix(".safetensors").write_bytes(save_safetensors_bytes(state))
    with pytest.raises(CheckpointError, match=f"tensor {re.escape(name)} contains NaN or infinite"):
        checkpoint.load(stem)


@pytest.mark.parametrize("changes, message", [
    ({"classes": ["a", "a", "b"]}, "lists a name twice"),
    ({"classes": "circle,square"}, "'classes' must be a list"),
    ({"classes": [1, 2, 3]}, "'classes' must be a list"),
    ({"image_size": "64"}, "'image_size' must be an integer"),
    ({"image_size": 10**6}, "'image_size' must be an integer"),
    ({"mean": [0.5, "x", 0.5]}, "'mean' must be a list of 3 numbers"),
    ({"std": [0.5, 0, 0.5]}, "'std' values must lie between 0.001 and 10"),
    ({"arch": ["seed-cnn"]}, "'arch' must be a string"),
    ({"arch": "resnet-9000"}, "nknown architecture"),
    ({"calibration": 5}, "'calibration' must be an object"),
    ({"calibration": {"temperature": 0}}, "'calibration' must hold a positive 'temperature'"),
    ({"calibration": {"temperature": "hot"}}, "'calibration' must hold a positive 'temperature'"),
    ({"unsure_threshold": "high"}, "'unsure_threshold' must be a number between 0 and 1"),
    ({"unsure_threshold": 7}, "'unsure_threshold' must be a number between 0 and 1"),
])
def test_sidecar_with_wrong_types_refused(tiny_checkpoint, tmp_path, changes, message):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path, "c")
    edit_sidecar(stem, **changes)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(stem)


def test_sidecar_that_is_not_an_object(tiny_checkpoint, tmp_path):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path, "c")
    stem.with_suffix(".json").write_text("[1, 2, 3]")
    with pytest.raises(CheckpointError, match="expected a JSON object"):
        checkpoint.load(stem)
    for broken in (b"\xff\xfe{", b"{not json"):
        stem.with_suffix(".json").write_bytes(broken)
        with pytest.raises(CheckpointError, match="not valid JSON"):
            checkpoint.load(stem)


def _state(model: str, tmp_path: Path) -> tuple[Path, object]:
    cfg = TrainConfig(model=model, image_size=64, freeze_epochs=0)
    state = build_state(cfg, resolve_run_spec(cfg), 3, 4)
    stem = tmp_path / "run"
    state.epoch = 1
    save_training_state(stem, state)
    return stem, state


def test_resume_with_another_model_is_a_message(tmp_path):
    stem, _ = _state("seed-cnn", tmp_path)
    cfg = TrainConfig(model="seed-cnn-bn", image_size=64, freeze_epochs=0)
    other = build_state(cfg, resolve_run_spec(cfg), 3, 4)
    with pytest.raises(CheckpointError, match="cannot resume from this training state.*original settings"):
        load_training_state(stem, other, 4)


def test_resume_from_damaged_state_is_a_message(tmp_path):
    stem, state = _state("seed-cnn", tmp_path)
    weights, scalars = state_paths(stem)
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 3])
    with pytest.raises(CheckpointError, match="cannot resume"):
        load_training_state(stem, state, 4)
    weights.write_bytes(good)
    scalars.write_text("{}")
    with pytest.raises(CheckpointError, match="cannot resume"):
        load_training_state(stem, state, 4)


def test_resume_detects_kill_between_state_writes(tmp_path):
    """The weights and the scalars of a state are two files; a kill between the renames must not mix epochs."""
    stem, state = _state("seed-cnn", tmp_path)
    scalars = state_paths(stem)[1]
    meta = json.loads(scalars.read_text())
    scalars.write_text(json.dumps({**meta, "epoch": 0}))
    with pytest.raises(CheckpointError, match="weights are from epoch 1"):
        load_training_state(stem, state, 4)
    scalars.write_text(json.dumps(meta))
    load_training_state(stem, state, 4)
    assert state.epoch == 1


def test_streamlit_security_settings():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = config["server"]
    assert server["enableXsrfProtection"] is True
    assert 1 <= server["maxUploadSize"] <= MAX_BYTES // 2**20  # MB; within the loader's own limit
    assert server.get("enableCORS", True) is True
    assert config.get("client", {}).get("showErrorDetails") in ("none", False)  # no tracebacks in the browser
    assert config.get("global", {}).get("developmentMode", False) is False


def _html_calls(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node, func in calls(tree):
        kw = {k.arg: k.value for k in node.keywords}
        if "unsafe_allow_html" in kw and ast.unparse(kw["unsafe_allow_html"]) != "False":
            yield node


def _interpolates_unescaped(node: ast.Call) -> bool:
    """Whether an HTML string argument mixes in a value that did not pass through html.escape."""
    for arg in node.args:
        if isinstance(arg, ast.Constant):
            continue
        for sub in ast.walk(arg):
            if isinstance(sub, ast.FormattedValue):
                inner = ast.unparse(sub.value)
                if not re.match(r"^(html\.)?escape\(", inner) and not re.fullmatch(r"[A-Z_0-9]+", inner):
                    return True
            if isinstance(sub, ast.Name) and sub is arg:
                return True  # a variable passed as the whole HTML: cannot be checked here
    return False


def test_no_unescaped_user_content_in_unsafe_html():
    files = [*(ROOT / "dance" / "ui").rglob("*.py"), *ROOT.glob("app.py")]
    offences = [f"{p.relative_to(ROOT)}:{n.lineno}" for p in files for n in _html_calls(p) if _interpolates_unescaped(n)]
    assert offences == [], "unsafe_allow_html with interpolated values not wrapped in html.escape(): " + ", ".join(
        offences)


def test_html_checker_fires_on_unescaped_interpolation():
    tree = ast.parse('st.markdown(f"<b>{name}</b>", unsafe_allow_html=True)\n'
                     'st.markdown(f"<b>{html.escape(name)}</b>", unsafe_allow_html=True)\n')
    flagged = [_interpolates_unescaped(n) for n, f in calls(tree) if f == "st.markdown"]
    assert flagged == [True, False]

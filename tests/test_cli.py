"""The command line through subprocess: output formats, exit codes, errors without tracebacks."""

from __future__ import annotations

import json

from helpers import copy_checkpoint, run_cli


def test_predict_json_lines_and_exit_status(tiny_checkpoint, synth_data, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("<html>not an image</html>")
    good = synth_data / "test" / "t0.png"
    proc = run_cli("predict", good, bad, "--weights", tiny_checkpoint, "--json")
    assert proc.returncode == 1
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0]["image"] == str(good) and set(lines[0]["probs"]) == {"circle", "square", "stripes"}
    assert abs(sum(lines[0]["probs"].values()) - 1) < 1e-6
    assert lines[0]["label"] == max(lines[0]["probs"], key=lines[0]["probs"].get)
    assert lines[1]["image"] == str(bad) and "not a supported image" in lines[1]["error"]
    assert "Traceback" not in proc.stderr


def test_predict_all_good_exits_zero_and_prints_top_k(tiny_checkpoint, synth_data):
    proc = run_cli("predict", synth_data / "test", "--weights", tiny_checkpoint, "--top", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4 and all(line.count(" 0.") + line.count(" 1.") == 2 for line in lines)


def test_predict_with_shipped_default_weights_sums_to_one(real_data):
    image = sorted((real_data / "test").glob("*.jpg"))[0]
    proc = run_cli("predict", image, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result["probs"]) == 8 and abs(sum(result["probs"].values()) - 1) < 1e-6


def test_pickle_weights_refused_cleanly(tmp_path, synth_data):
    (tmp_path / "evil.pth").write_bytes(b"\x80\x04.")
    proc = run_cli("predict", synth_data / "test" / "t0.png", "--weights", tmp_path / "evil.pth")
    assert proc.returncode == 2 and "pickle" in proc.stderr and "Traceback" not in proc.stderr


def test_check_reports_bad_rows_without_traceback(synth_data, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train").mkdir()
    (bad / "train.csv").write_text("Image,target\nmissing.jpg,kathak\n../../etc/passwd,odissi\n")
    proc = run_cli("check", "--data", bad)
    assert proc.returncode == 2
    assert "line 2 (missing.jpg): image file not found" in proc.stderr
    assert "line 3" in proc.stderr and "Traceback" not in proc.stderr
    ok = run_cli("check", "--data", synth_data)
    assert ok.returncode == 0 and "24 valid images, 3 classes" in ok.stdout


def test_missing_data_dir_message(tmp_path):
    proc = run_cli("check", "--data", tmp_path / "none")
    assert proc.returncode == 2 and "No data set found" in proc.stderr


def test_train_evaluate_submit_round_trip(synth_data, tmp_path):
    out = tmp_path / "m"
    proc = run_cli("train", "--data", synth_data, "--model", "seed-cnn", "--epochs", "2", "--image-size", "64",
               "--batch-size", "8", "--output", out, "--aug-preset", "none")
    assert proc.returncode == 0, proc.stderr
    assert "epoch   2" in proc.stdout and "hold-out: accuracy" in proc.stdout
    assert out.with_suffix(".safetensors").exists() and (tmp_path / "m.history.html").exists()
    history = json.loads((tmp_path / "m.history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]

    proc = run_cli("evaluate", "--data", synth_data, "--weights", out, "--output", tmp_path / "ev")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "ev.json").read_text())
    meta = json.loads(out.with_suffix(".json").read_text())
    assert report["metrics"]["count"] == len(meta["split"]["val_images"])

    proc = run_cli("submit", "--data", synth_data, "--weights", out, "--output", tmp_path / "sub.csv")
    assert proc.returncode == 0, proc.stderr
    rows = (tmp_path / "sub.csv").read_text().splitlines()
    assert rows[0] == "Image,target" and len(rows) == 5
    assert all(r.split(",")[1] in ("circle", "square", "stripes") for r in rows[1:])


def test_train_without_output_never_touches_the_default_weights(synth_data, tiny_checkpoint, tmp_path):
    from dance import paths

    weights = copy_checkpoint(tiny_checkpoint, tmp_path / "weights", "default").parent
    served = {p.name: p.read_bytes() for p in weights.glob("default.*")}
    shipped = {p.name: p.read_bytes() for p in paths.WEIGHTS_DIR.glob("default.*")}
    proc = run_cli("train", "--data", synth_data, "--model", "seed-cnn", "--epochs", "1", "--image-size", "32",
                   "--aug-preset", "none", env={"DANCE_WEIGHTS_DIR": str(weights)})
    assert proc.returncode == 0, proc.stderr
    assert {p.name: p.read_bytes() for p in weights.glob("default.*")} == served
    assert {p.name: p.read_bytes() for p in paths.WEIGHTS_DIR.glob("default.*")} == shipped
    made = sorted(p.name for p in weights.glob("*.safetensors") if p.name != "default.safetensors")
    assert len(made) == 1 and made[0].startswith("seed-cnn-")  # a new, timestamped name beside it

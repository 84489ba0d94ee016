"""Knowledge distillation: the loss, a student copying its teacher, and the checks that keep scores honest."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from helpers import small_config
from torch import nn

from dance.config import AugmentConfig, TrainConfig
from dance.errors import DanceError, DataError
from dance.models import checkpoint
from dance.models.preprocess import build_eval_transform
from dance.models.spec import resolve_run_spec
from dance.training.cv import cross_validate
from dance.training.engine import distillation_loss, fit, predict_logits, resize_batch
from dance.training.train import build_state, check_settings, make_loader, prepare_data, train
from dance.training.transforms import build_train_transform


def small_cfg(**changes) -> TrainConfig:
    return small_config(**{"image_size": 48, **changes})


def test_distillation_loss_is_the_temperature_scaled_kl_divergence():
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 4), torch.randn(5, 4)
    t = 3.0
    p = (teacher / t).softmax(1)
    expected = (p * (p.log() - (student / t).log_softmax(1))).sum(1).mean() * t * t
    assert torch.allclose(distillation_loss(student, teacher, t), expected, atol=1e-6)
    assert float(distillation_loss(teacher, teacher, t)) == pytest.approx(0.0, abs=1e-6)
    # at T = 1 it is F.kl_div on probabilities (guards against swapping student and teacher)
    reference = F.kl_div(student.log_softmax(1), teacher.softmax(1), reduction="batchmean")
    assert torch.allclose(distillation_loss(student, teacher, 1.0), reference, atol=1e-6)


def test_resize_batch_keeps_a_batch_already_at_size():
    x = torch.rand(2, 3, 64, 64)
    assert resize_batch(x, 64) is x
    assert resize_batch(x, 40).shape == (2, 3, 40, 40)


class AlwaysFirst(nn.Module):
    """A 'teacher' that is sure every image belongs to class 0, and checks the size it is given."""

    def __init__(self, classes: int, size: int):
        super().__init__()
        self.classes, self.size = classes, size

    def forward(self, x):
        assert x.shape[-1] == self.size
        logits = torch.full((len(x), self.classes), -4.0)
        logits[:, 0] = 4.0
        return logits


def test_pure_distillation_makes_the_student_copy_its_teacher(synth_data):
    cfg = small_cfg(epochs=6, lr=3e-3, label_smoothing=0.0, distill_weight=1.0, distill_temperature=1.0,
                    val_fraction=0.0)
    prepared = prepare_data(cfg, synth_data)
    labels, classes = prepared.dataset.labels, len(prepared.dataset.classes)
    everything = range(len(labels))
    # the loader gives 64 px images: the teacher sees them as they are, the student resized to 48 px
    train_tf = build_train_transform(cfg.augment, 64, (0, 0, 0), (1, 1, 1))
    loader = make_loader(prepared.tensors, labels, everything, train_tf, cfg.batch_size, True, cfg.seed)
    state = build_state(cfg, resolve_run_spec(cfg), classes, len(loader))
    state.teacher, state.teacher_size = AlwaysFirst(classes, 64), 64
    fit(cfg, state, loader, None, torch.device("cpu"))
    eval_loader = make_loader(prepared.tensors, labels, everything, build_eval_transform(48, (0, 0, 0), (1, 1, 1)),
                              16, False)
    logits, targets = predict_logits(state.model, eval_loader, torch.device("cpu"))
    assert (targets == 0).float().mean() < 0.5  # the labels say otherwise for most images...
    assert (logits.argmax(1) == 0).float().mean() > 0.9  # ...but the student learnt only from the teacher


def test_student_checkpoint_records_its_teacher(synth_data, tiny_checkpoint, tmp_path):
    cfg = small_cfg(teacher=str(tiny_checkpoint), val_fraction=0.0, workers=1)
    result = train(cfg, synth_data, tmp_path / "student")
    meta = checkpoint.read_sidecar(result.checkpoint)
    assert meta["config"]["teacher"] == str(tiny_checkpoint) and meta["image_size"] == 48
    assert torch.isfinite(torch.tensor(result.history[0]["train_loss"]))


def test_a_teacher_that_saw_the_hold_out_is_refused(synth_data, tiny_checkpoint, tmp_path):
    teacher_split = checkpoint.read_sidecar(tiny_checkpoint)["split"]  # the fixture held out 25 % with seed 0
    with pytest.raises(DanceError, match="hold-out"):
        train(small_cfg(teacher=str(tiny_checkpoint), val_fraction=0.25, seed=1), synth_data, tmp_path / "a")
    # the same hold-out as the teacher's is fine: the teacher never saw those images
    result = train(small_cfg(teacher=str(tiny_checkpoint), val_fraction=0.25, seed=0), synth_data, tmp_path / "b")
    assert sorted(p.split("/")[-1] for p in result.holdout.paths) == sorted(teacher_split["val_images"])


def test_a_teacher_with_other_classes_is_refused(synth_data, tiny_checkpoint, tmp_path):
    other = tmp_path / "other"
    shutil.copy(tiny_checkpoint.with_suffix(".safetensors"), other.with_suffix(".safetensors"))
    meta = json.loads(tiny_checkpoint.with_suffix(".json").read_text())
    meta["classes"] = [f"x{c}" for c in meta["classes"]]
    other.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(DanceError, match="predicts"):
        train(small_cfg(teacher=str(other), val_fraction=0.0), synth_data, tmp_path / "s")


def test_cv_distils_from_the_teacher_of_the_same_fold_only(synth_data, tmp_path):
    cross_validate(small_cfg(image_size=64), synth_data, k=2, name="teacher", out_root=tmp_path, save_fold_models=True)
    folds = tmp_path / "teacher" / "folds"
    assert sorted(p.name for p in folds.iterdir()) == ["fold-0.json", "fold-0.safetensors", "fold-1.json",
                                                      "fold-1.safetensors"]
    pattern = str(folds / "fold-{fold}")
    result = cross_validate(small_cfg(teacher=pattern), synth_data, k=2, name="student", out_root=tmp_path)
    assert result.summary["config"]["teacher"] == pattern and len(result.folds) == 2
    # other folds (another seed) would let each teacher pass on answers about the student's validation images
    with pytest.raises(DataError, match="fold 0"):
        cross_validate(small_cfg(teacher=pattern, seed=7), synth_data, k=2, name="leaky", out_root=tmp_path)


def test_augmentation_does_not_depend_on_the_number_of_workers(synth_data, tmp_path):
    # each image's augmentation is seeded by (run seed, epoch, image), not by the process that draws it
    weights = []
    for workers in (0, 2):
        cfg = small_cfg(epochs=2, workers=workers, val_fraction=0.0, augment=AugmentConfig(preset="strong"))
        stem = train(cfg, synth_data, tmp_path / f"w{workers}").checkpoint
        weights.append(checkpoint.load(stem).model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    other_seed = train(small_cfg(epochs=2, seed=1, val_fraction=0.0, augment=AugmentConfig(preset="strong")),
                       synth_data, tmp_path / "s1").checkpoint
    changed = checkpoint.load(other_seed).model.state_dict()
    assert not all(torch.equal(weights[0][k], changed[k]) for k in changed)


@pytest.mark.parametrize("change, message", [
    (dict(workers=-1), "workers"),
    (dict(distill_weight=1.5), "distillation weight"),
    (dict(distill_temperature=0.0), "temperature"),
    (dict(teacher="weights/default", method="probe", model="effnet-lite0"), "needs method finetune"),
])
def test_bad_distillation_settings_are_refused(change, message):
    with pytest.raises(DanceError, match=message):
        check_settings(small_cfg(**change))

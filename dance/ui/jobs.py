"""A training run in a background thread, with progress the Train page can poll (no streamlit calls in the thread)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from dance.config import TrainConfig
from dance.errors import DanceError
from dance.training.train import TrainResult, prepare_data, train


class _Stopped(Exception):
    """Raised inside the decode progress callback when Stop is pressed before training begins."""


def duration(seconds: float) -> str:
    """'45 s', '3 min', '1 h 05 min': a rough, readable span."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class TrainJob:
    """Runs dance.train.train in a daemon thread; a Callback for progress and a threading.Event to stop it."""

    def __init__(self, cfg: TrainConfig, data_dir: str | Path | None, output: Path, overwrite: bool = False):
        self.cfg, self.data_dir, self.output, self.overwrite = cfg, data_dir, output, overwrite
        self.stop = threading.Event()
        self.phase = "starting"  # starting -> decoding -> training -> saving -> done | stopped | failed
        self.decoded = (0, 0)
        self.epoch, self.batch, self.batches, self.last_loss = 0, 0, 0, float("nan")
        self.history: list[dict] = []
        self.result: TrainResult | None = None
        self.error: str | None = None
        self.started = time.time()
        self.training_started: float | None = None  # when the first batch began (for the time estimate)
        self.finished: float | None = None
        self.acknowledged = False  # the page has refreshed its checkpoint list for this result
        self.thread = threading.Thread(target=self._run, name=f"train-{output.name}", daemon=True)

    def start(self) -> "TrainJob":
        """Start the thread; returns self."""
        self.thread.start()
        return self

    @property
    def running(self) -> bool:
        """Whether the thread is still working."""
        return self.thread.is_alive()

    @property
    def decode_fraction(self) -> float:
        """Share of the images decoded so far (the up-front decode has its own bar)."""
        done, total = self.decoded
        return done / total if total else 0.0

    @property
    def fraction(self) -> float:
        """Share of the training batches done, in [0, 1]: a stopped run stays where it stopped."""
        if self.phase == "done":
            return 1.0
        per_epoch = (self.batch / self.batches) if self.batches else 0.0
        return min(1.0, (self.epoch + per_epoch) / max(1, self.cfg.epochs))

    def remaining(self) -> float | None:
        """Seconds of training left, from the pace so far (None before the first batch finished)."""
        if self.training_started is None or self.phase != "training" or self.fraction <= 0:
            return None
        elapsed = time.time() - self.training_started
        return elapsed * (1 - self.fraction) / self.fraction

    def status(self) -> str:
        """One line for the progress bar."""
        if self.phase in ("starting", "decoding"):
            done, total = self.decoded
            what = f"Decoding images {done}/{total}" if total else "Reading the data set"
            return what + (" — stopping…" if self.stop.is_set() else " (before the first epoch)…")
        if self.phase == "training" and self.cfg.method == "probe":
            return "Computing the backbone's features and fitting the probe…"
        if self.phase == "training":
            if not self.batches:
                return "Building the model and the first batch…" + (" stopping…" if self.stop.is_set() else "")
            loss = f", loss {self.last_loss:.3f}" if self.last_loss == self.last_loss else ""
            left = self.remaining()
            eta = f" — about {duration(left)} left" if left is not None else ""
            stopping = " (stopping after this batch…)" if self.stop.is_set() else ""
            return f"Epoch {self.epoch + 1}/{self.cfg.epochs}, batch {self.batch}/{self.batches}{loss}{eta}{stopping}"
        if self.phase == "saving":
            return "Evaluating the hold-out and saving…"
        if self.phase == "stopped":
            done = len(self.history)
            if self.result is None:
                return "Stopped by you before training began; nothing was saved."
            partial = f" and {self.batch} of {self.batches} batches of epoch {done + 1}" if self.batch else ""
            return (f"Stopped by you after {done} of {self.cfg.epochs} epoch(s){partial}; "
                    "saved the weights as they were.")
        return {"done": "Done.", "failed": "Failed."}.get(self.phase, self.phase)

    # Callback protocol (dance.engine.Callback), called from the training thread.
    def on_batch_end(self, epoch: int, batch: int, batches: int, loss: float) -> None:
        """Record batch progress."""
        self.batch, self.batches, self.last_loss = batch, batches, loss
        self.epoch = int(epoch)  # epochs completed so far (0-based index of the running epoch)
        if self.training_started is None:
            self.training_started = time.time()

    def on_epoch_end(self, record: dict) -> bool:
        """Record the epoch; keep going unless asked to stop."""
        self.history.append(dict(record))
        self.epoch, self.batch = len(self.history), 0
        if self.epoch >= self.cfg.epochs or self.stop.is_set():
            self.phase = "saving"
        return not self.stop.is_set()

    def _decoding(self, done: int, total: int) -> None:
        """Progress of the up-front image decode; Stop acts here too (nothing is saved before training)."""
        if self.stop.is_set():
            raise _Stopped
        self.phase, self.decoded = "decoding", (done, total)

    def _run(self) -> None:
        """Thread body: every error becomes a message; nothing propagates out of the thread."""
        try:
            prepared = prepare_data(self.cfg, self.data_dir, progress=self._decoding)
            self.phase = "training"
            self.result = train(self.cfg, self.data_dir, self.output, callbacks=[self], stop=self.stop,
                                overwrite=self.overwrite, prepared=prepared)
            self.phase = "stopped" if self.result.stopped else "done"
        except _Stopped:
            self.phase = "stopped"  # before the first batch: no checkpoint was written
        except DanceError as exc:
            self.error, self.phase = str(exc), "failed"
        except Exception as exc:  # noqa: BLE001 - the page shows a message, never a traceback
            self.error, self.phase = f"Training failed: {type(exc).__name__}: {exc}", "failed"
        finally:
            self.finished = time.time()

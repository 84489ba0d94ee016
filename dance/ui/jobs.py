"""A training run in a background thread, with progress the Train page can poll (no streamlit calls in the thread)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from dance.config import TrainConfig
from dance.errors import DanceError
from dance.training.train import TrainResult, prepare_data, train


class TrainJob:
    """Runs dance.train.train in a daemon thread; a Callback for progress and a threading.Event to stop it."""

    def __init__(self, cfg: TrainConfig, data_dir: str | Path | None, output: Path, overwrite_default: bool = False):
        self.cfg, self.data_dir, self.output, self.overwrite_default = cfg, data_dir, output, overwrite_default
        self.stop = threading.Event()
        self.phase = "starting"  # starting -> decoding -> training -> saving -> done | failed
        self.decoded = (0, 0)
        self.epoch, self.batch, self.batches, self.last_loss = 0, 0, 0, float("nan")
        self.history: list[dict] = []
        self.result: TrainResult | None = None
        self.error: str | None = None
        self.started = time.time()
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
    def fraction(self) -> float:
        """Progress in [0, 1] over decoding (first 10%) and the epochs."""
        if self.phase in ("done", "saving"):
            return 1.0
        done, total = self.decoded
        decode = done / total if total else 0.0
        if self.phase in ("starting", "decoding"):
            return 0.1 * decode
        per_epoch = (self.batch / self.batches) if self.batches else 0.0
        return min(1.0, 0.1 + 0.9 * (self.epoch + per_epoch) / max(1, self.cfg.epochs))

    def status(self) -> str:
        """One line for the progress bar."""
        if self.phase == "decoding":
            done, total = self.decoded
            return f"Decoding images {done}/{total}…"
        if self.phase == "training" and self.cfg.method == "probe":
            return "Computing the backbone's features and fitting the probe…"
        if self.phase == "training":
            loss = f", loss {self.last_loss:.3f}" if self.last_loss == self.last_loss else ""
            stopping = " (stopping after this batch…)" if self.stop.is_set() else ""
            return f"Epoch {self.epoch + 1}/{self.cfg.epochs}, batch {self.batch}/{self.batches}{loss}{stopping}"
        if self.phase == "saving":
            return "Evaluating the hold-out and saving…"
        return {"starting": "Starting…", "done": "Done.", "failed": "Failed."}.get(self.phase, self.phase)

    # Callback protocol (dance.engine.Callback), called from the training thread.
    def on_batch_end(self, epoch: int, batch: int, batches: int, loss: float) -> None:
        """Record batch progress."""
        self.batch, self.batches, self.last_loss = batch, batches, loss
        self.epoch = int(epoch)  # epochs completed so far (0-based index of the running epoch)

    def on_epoch_end(self, record: dict) -> bool:
        """Record the epoch; keep going unless asked to stop."""
        self.history.append(dict(record))
        self.epoch, self.batch = len(self.history), 0
        if self.epoch >= self.cfg.epochs or self.stop.is_set():
            self.phase = "saving"
        return not self.stop.is_set()

    def _decoding(self, done: int, total: int) -> None:
        """Progress of the up-front image decode."""
        self.phase, self.decoded = "decoding", (done, total)

    def _run(self) -> None:
        """Thread body: every error becomes a message; nothing propagates out of the thread."""
        try:
            prepared = prepare_data(self.cfg, self.data_dir, progress=self._decoding)
            self.phase = "training"
            self.result = train(self.cfg, self.data_dir, self.output, callbacks=[self], stop=self.stop,
                                overwrite_default=self.overwrite_default, prepared=prepared)
            self.phase = "done"
        except DanceError as exc:
            self.error, self.phase = str(exc), "failed"
        except Exception as exc:  # noqa: BLE001 - the page shows a message, never a traceback
            self.error, self.phase = f"Training failed: {type(exc).__name__}: {exc}", "failed"
        finally:
            self.finished = time.time()

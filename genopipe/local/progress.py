"""What a person watching `genopipe local run` sees: sample, step, job status, elapsed time.

On a terminal one status line is redrawn in place; otherwise (CI logs, pipes) each change is one
plain line. Either way it goes to stderr, so stdout stays for the summary and the final event.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from genopipe.local.batch import JobUpdate


class Progress:
    def __init__(self, stream: TextIO | None = None, interactive: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.started = time.monotonic()
        self._line = "waiting for the sample to start"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self) -> None:
        if self.interactive:
            self._ticker = threading.Thread(target=self._tick, name="genopipe-progress", daemon=True)
            self._ticker.start()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def job(self, update: JobUpdate) -> None:
        attempt = f" (attempt {update.attempt})" if update.attempt > 1 else ""
        reason = f": {update.reason}" if update.reason and update.status == "FAILED" else ""
        step = update.step if update.shard is None else f"{update.step}[{update.shard}]"
        self.say(f"{update.sample or '-'}  {step:<9} {update.status}{attempt}{reason}")

    def say(self, text: str) -> None:
        with self._lock:
            self._line = text
            if not self.interactive:
                self.stream.write(f"[{self.elapsed():6.1f}s] {text}\n")
                self.stream.flush()
            else:
                self._draw()

    def finish(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        if self.interactive:
            with self._lock:
                self._draw()
                self.stream.write("\n")
                self.stream.flush()

    def _draw(self) -> None:
        self.stream.write(f"\r\033[K[{self.elapsed():6.1f}s] {self._line}")
        self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                self._draw()

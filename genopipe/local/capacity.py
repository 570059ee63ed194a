"""This machine as a Batch compute environment: jobs are bin-packed by vCPUs and memory."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


def machine_vcpus() -> int:
    return len(os.sched_getaffinity(0))


def machine_memory_mib() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024))


class HostCapacity:
    """Admits a job when its vCPUs and memory fit beside the running ones, as Batch places
    containers on an instance; a job bigger than the machine is shrunk to the machine."""

    def __init__(self, vcpus: int | None = None, memory_mib: int | None = None) -> None:
        self.vcpus = vcpus or machine_vcpus()
        self.memory_mib = memory_mib or machine_memory_mib()
        self._used_vcpus = 0
        self._used_memory = 0
        self._changed = threading.Condition()

    def fit(self, vcpus: int, memory_mib: int) -> tuple[int, int]:
        """The request as it will run here (at most the whole machine)."""
        fitted = (max(1, min(vcpus, self.vcpus)), max(1, min(memory_mib, self.memory_mib)))
        if fitted != (vcpus, memory_mib):
            log.debug("job asks %s vCPU / %s MiB; this machine gives it %s / %s", vcpus, memory_mib, *fitted)
        return fitted

    @contextmanager
    def reserved(self, vcpus: int, memory_mib: int, cancelled: threading.Event) -> Iterator[bool]:
        """Wait until the job fits (or `cancelled`); hold its share inside. Yields False if cancelled."""
        with self._changed:
            while not cancelled.is_set() and (
                self._used_vcpus + vcpus > self.vcpus or self._used_memory + memory_mib > self.memory_mib
            ):
                self._changed.wait(0.2)
            admitted = not cancelled.is_set()
            if admitted:
                self._used_vcpus += vcpus
                self._used_memory += memory_mib
        try:
            yield admitted
        finally:
            if admitted:
                with self._changed:
                    self._used_vcpus -= vcpus
                    self._used_memory -= memory_mib
                    self._changed.notify_all()

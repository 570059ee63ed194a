"""One cached SDK client per service and process, and one way to forget them all.

boto3 clients are thread-safe, so threads share them. A process that switches endpoints (a
second local stack in one process, a test under moto) calls `reset_clients()`, which clears
every client made through `sdk_client` so far: no list of adapters to keep up to date.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

Client = TypeVar("Client")
_CACHES: list[Callable[[], None]] = []


def sdk_client(factory: Callable[[], Client]) -> Callable[[], Client]:
    """Decorate an adapter's `client()` factory: made once per process, until `reset_clients()`."""
    cached = functools.cache(factory)
    _CACHES.append(cached.cache_clear)
    return cached


def reset_clients() -> None:
    for clear in _CACHES:
        clear()

"""One cached SDK client per service and process, and one way to forget them all.

boto3 clients are thread-safe, so threads share them. A process that switches endpoints (a
second local stack in one process, a test under moto) calls `reset_clients()`, which clears
every client made through `sdk_client` so far: no list of adapters to keep up to date.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

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


# error codes AWS services answer when a call may succeed if made again a little later
_OF_THE_MOMENT = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "ServerException",
    }
)


class AwsUnavailable(Exception):
    """An AWS call failed for a reason of the moment (throttling, a 5xx, the network) after the
    SDK's own retries. The Lambda's error type is this class's name, which the state machine's
    Retry names (statemachine/build.py): a sample that ran for hours does not fail on it."""


@contextmanager
def unavailable_is_retried() -> Iterator[None]:
    """Raise AwsUnavailable for AWS errors of the moment; every other error passes unchanged."""
    try:
        yield
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _OF_THE_MOMENT or status >= 500:
            raise AwsUnavailable(f"{error.operation_name}: {code or status}: {error}") from error
        raise
    except (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError) as error:
        raise AwsUnavailable(str(error)) from error

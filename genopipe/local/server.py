"""moto in server mode, in this process (so the local stack's patches apply to its backends)."""

from __future__ import annotations

import json
import logging
import os
import socket
import urllib.request

from moto.server import ThreadedMotoServer

from genopipe.aws.clients import reset_clients

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEFAULT_PORT = 4566
REGION = "us-east-1"


class PortInUse(Exception):
    pass


def endpoint_url(port: int) -> str:
    return f"http://{HOST}:{port}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


_SDK_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "MOTO_PORT",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "INITIAL_NO_AUTH_ACTION_COUNT",
)


def sdk_environment() -> dict[str, str | None]:
    """The variables `point_sdk_at` changes, to restore them afterwards."""
    return {name: os.environ.get(name) for name in _SDK_VARIABLES}


def restore_sdk_environment(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    reset_clients()


def point_sdk_at(port: int) -> None:
    """Make every AWS SDK call of this process and its children go to the moto server."""
    os.environ["AWS_ENDPOINT_URL"] = endpoint_url(port)
    os.environ["MOTO_PORT"] = str(port)  # moto's Step Functions interpreter calls Lambda here
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    os.environ.setdefault("AWS_REGION", os.environ["AWS_DEFAULT_REGION"])
    # moto accepts any credentials; these keep the SDK from searching for real ones
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    reset_clients()  # they may have been made for another endpoint


def start(port: int = DEFAULT_PORT, unauthenticated_requests: float = float("inf")) -> ThreadedMotoServer:
    """Start the server on 127.0.0.1:`port`, configured to execute state machines.

    IAM: the first `unauthenticated_requests` requests are not authenticated, every later one is
    authenticated and authorised (moto's `INITIAL_NO_AUTH_ACTION_COUNT`); `inf` turns IAM off."""
    with socket.socket() as probe:
        if probe.connect_ex((HOST, port)) == 0:
            raise PortInUse(f"127.0.0.1:{port}: port already in use (another `genopipe local up`?)")
    point_sdk_at(port)
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(unauthenticated_requests)
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    # moto's backends live as long as the process: start from an empty account every time
    _post(port, "/moto-api/reset", b"")
    # moto read the variable when it was imported (maybe before it was set): say it again, which
    # also restarts the count of unauthenticated requests
    _post(port, "/moto-api/reset-auth", str(unauthenticated_requests).encode())
    _post(port, "/moto-api/config", json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode())
    return server


def stop_authenticating() -> None:
    """After the server stopped: this process's moto (e.g. `mock_aws` tests) authorises nothing again."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
    ActionAuthenticatorMixin.request_count = 0


def _post(port: int, path: str, body: bytes) -> None:
    request = urllib.request.Request(
        f"{endpoint_url(port)}{path}", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        log.debug("moto %s: %s", path, response.read().decode())

"""Fixtures every tier shares: AWS emulated in-process by moto.

`moto` gives a test an empty in-process AWS, with every genopipe SDK client made afresh inside
it (and forgotten afterwards, so the next test's clients do not talk to this one's backends). A
module that needs moto configured (e.g. the Step Functions interpreter) overrides `moto_config`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from genopipe.aws.clients import reset_clients

REGION = "us-east-1"


@pytest.fixture
def moto_config() -> dict[str, Any]:
    """moto's settings for the `moto` fixture; override in a module to change them."""
    return {}


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch, moto_config: dict[str, Any]) -> Iterator[None]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws(config=moto_config or None):
        reset_clients()
        yield
    reset_clients()

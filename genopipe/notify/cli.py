"""`genopipe publish <execution ARN>`: publish a sample's staged results again.

For a sample whose publishing failed (`Sample Failed`, error type `PublishFailed`: a timeout,
throttling, a copy error), the staged results are kept; this runs the same promotion the notify
Lambda runs, with the request the execution gave it, against whatever AWS endpoint the
environment names (`AWS_ENDPOINT_URL` for the local stack), and puts the `Sample Completed` event.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from genopipe.aws import stepfunctions
from genopipe.aws.eventbridge import EventBridgeBus
from genopipe.aws.s3 import S3Error
from genopipe.aws.staging import S3Staging
from genopipe.contracts import NotifyRequest
from genopipe.notify.announce import PromotionError, complete
from genopipe.notify.cost import Prices


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("execution_arn", help="the sample's execution (its Sample Failed event names it)")
    parser.add_argument("--event-bus", default=os.environ.get("EVENT_BUS_NAME") or "default")
    parser.add_argument(
        "--spot-price", type=float, default=0.015, help="USD per vCPU-hour (SpotPricePerVcpuHour)"
    )
    parser.add_argument(
        "--on-demand-price", type=float, default=0.0425, help="USD per vCPU-hour (OnDemandPricePerVcpuHour)"
    )


def run(args: argparse.Namespace) -> int:
    found = stepfunctions.notify_request(args.execution_arn)
    if found is None:
        print(f"genopipe publish: {args.execution_arn}: never reached publishing (nothing staged to publish)",
              file=sys.stderr)  # fmt: skip
        return 1
    request = NotifyRequest.model_validate(found)
    prices = Prices(spot_per_vcpu_hour=args.spot_price, on_demand_per_vcpu_hour=args.on_demand_price)
    try:
        event = complete(request, S3Staging(), EventBridgeBus(args.event_bus), prices)
    except (S3Error, PromotionError) as error:
        print(f"genopipe publish: {error}", file=sys.stderr)
        return 1
    print(json.dumps(event.model_dump(mode="json", exclude_none=True)))
    return 0

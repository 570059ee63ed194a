"""IAM on the local stack: every caller acts as its own principal, and moto authorises what AWS would.

Principals. The harness (deploying the template, uploading a user's files, fetching outputs) acts as
an admin user created in moto's first unauthenticated requests (`INITIAL_NO_AUTH_ACTION_COUNT`);
each in-process Lambda invocation acts as its function's execution role, each Batch job as its job
definition's job role, and the Step Functions interpreter as the state machine's role. Role
credentials come from STS AssumeRole in moto's STS backend, made the way the service that owns the
role would (after checking that the role's trust policy names that service).

Handlers run in threads of this process and genopipe caches its SDK clients, so the identity is
per invocation, not per client: every boto3 client made while enforcement is installed signs each
request with `_PrincipalCredentials`, which reads the principal of the current context
(`acting_as`); thread pools (S3 transfers) inherit their submitter's context. Jobs are processes:
they get their role's keys in their environment.

What moto 5.2.5 gets wrong or leaves out, completed here (docs/internals.md, "IAM on the local stack"):
- Batch derives action names from the URL in lower case (`batch:submitjob`): mapped to the
  operation names of the service model (`batch:SubmitJob`).
- Services other than S3/SQS/IAM/STS are authorised against resource `*`, so a grant scoped to a
  table, queue or function never matches: the resource ARNs are derived from the request
  (`_resources`), as AWS's Service Authorization Reference lists them.
- One action per request: AWS's additional authorisations for the calls genopipe makes are added
  (`_additional`): SubmitJob with tags also needs `batch:TagResource`; CopyObject and UploadPartCopy
  need `s3:GetObject` on the source; DeleteObjects needs `s3:DeleteObject` on every key.
- Lambda's Invoke is authorised as `lambda:InvokeFunction`; S3 ListBucket evaluates the `s3:prefix`
  condition key (StringLike/StringEquals).
- Denials name the principal, the action and the resource, as AWS's messages do.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import fnmatch
import json
import logging
import threading
import urllib.parse
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.credentials
import botocore.session
from moto import settings as moto_settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import AccessDeniedError, JsonRESTError, _RESTError
from moto.iam.access_control import IAMPolicy, IAMRequest, PermissionResult, S3IAMRequest
from moto.iam.models import iam_backends
from moto.s3.exceptions import BucketAccessDeniedError
from moto.sts.models import sts_backends

log = logging.getLogger(__name__)

ADMIN_USER = "genopipe-local-admin"
# the requests that bootstrap the admin identity: CreateUser, PutUserPolicy, CreateAccessKey
BOOTSTRAP_REQUESTS = 3
SESSION_SECONDS = 12 * 3600
_PARTITION = "aws"
_TRUSTED_SERVICE = {
    "lambda": "lambda.amazonaws.com",
    "batch-job": "ecs-tasks.amazonaws.com",
    "states": "states.amazonaws.com",
}


class TrustError(Exception):
    """A role's trust policy does not let the service that would use it assume it."""


@dataclass(frozen=True)
class Principal:
    name: str  # a role's or user's name, for messages
    arn: str
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def environment(self) -> dict[str, str]:
        """The variables an SDK in a child process reads its credentials from."""
        variables = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            variables["AWS_SESSION_TOKEN"] = self.session_token
        return variables


@dataclass(frozen=True)
class Decision:
    """One authorisation the local stack made: who, what, on which resource, and the answer."""

    principal_arn: str
    action: str
    resource: str
    allowed: bool

    @property
    def role(self) -> str:
        """The role's name for an assumed-role session (`.../assumed-role/<role>/<session>`)."""
        parts = self.principal_arn.split("/")
        return parts[1] if ":assumed-role/" in self.principal_arn and len(parts) > 2 else parts[-1]


_CURRENT: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "genopipe_principal", default=None
)


class _PrincipalCredentials(botocore.credentials.Credentials):
    """Credentials whose keys are those of the principal the calling context acts as."""

    def __init__(self, enforcement: Enforcement) -> None:  # no super(): the keys are looked up per use
        self._enforcement = enforcement
        self.method = "genopipe-local-principal"
        self.account_id = None

    def _principal(self) -> Principal:
        return _CURRENT.get() or self._enforcement.admin

    @property
    def access_key(self) -> str:
        return self._principal().access_key_id

    @property
    def secret_key(self) -> str:
        return self._principal().secret_access_key

    @property
    def token(self) -> str | None:
        return self._principal().session_token

    def get_frozen_credentials(self) -> botocore.credentials.ReadOnlyCredentials:
        principal = self._principal()
        return botocore.credentials.Credentials(
            principal.access_key_id, principal.secret_access_key, principal.session_token
        ).get_frozen_credentials()


@contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """SDK calls made in this context (and the thread pools it submits to) sign as `principal`."""
    token = _CURRENT.set(principal)
    try:
        yield
    finally:
        _CURRENT.reset(token)


# -- what AWS authorises, for the requests moto sees ----------------------------------------------

# API operation -> IAM action where they differ (the Service Authorization Reference)
_IAM_ACTION = {("lambda", "Invoke"): "InvokeFunction", ("lambda", "InvokeAsync"): "InvokeAsync"}


def _body(response: Any) -> dict[str, Any]:
    if isinstance(response.body, dict):  # moto parsed it already (DynamoDB)
        return response.body
    try:
        parsed = json.loads(response.body or "{}")
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _arn(service: str, region: str, account: str, resource: str) -> str:
    return f"arn:{_PARTITION}:{service}:{region}:{account}:{resource}"


def _batch_arn(value: str, kind: str, region: str, account: str) -> str:
    return value if value.startswith("arn:") else _arn("batch", region, account, f"{kind}/{value}")


def _resources(service: str, action: str, response: Any) -> list[str]:
    """The resource ARNs AWS authorises `service:action` against, from the request."""
    region, account = response.region, response.current_account
    params = _body(response)
    if service == "dynamodb" and params.get("TableName"):
        name = str(params["TableName"])
        return [name if name.startswith("arn:") else _arn("dynamodb", region, account, f"table/{name}")]
    if service == "states":
        for key in ("stateMachineArn", "executionArn"):
            if params.get(key):
                return [str(params[key])]
    if service == "events" and action == "PutEvents":
        buses = {str(entry.get("EventBusName") or "default") for entry in params.get("Entries", [])}
        return sorted(
            bus if bus.startswith("arn:") else _arn("events", region, account, f"event-bus/{bus}")
            for bus in buses or {"default"}
        )
    if service == "batch" and action == "SubmitJob":
        return [
            _batch_arn(str(params.get("jobQueue", "")), "job-queue", region, account),
            _batch_arn(str(params.get("jobDefinition", "")), "job-definition", region, account),
        ]
    if service == "batch" and action in {"TerminateJob", "CancelJob"}:  # resource type `job`
        return [_batch_arn(str(params.get("jobId", "")), "job", region, account)]
    if service == "logs" and params.get("logGroupName"):
        group = f"log-group:{params['logGroupName']}"
        if params.get("logStreamName"):
            return [_arn("logs", region, account, f"{group}:log-stream:{params['logStreamName']}")]
        return [_arn("logs", region, account, f"{group}:*")]
    if service == "lambda" and "/functions/" in response.path:
        name = urllib.parse.unquote(response.path.split("/functions/", 1)[1].split("/", 1)[0])
        return [name if name.startswith("arn:") else _arn("lambda", region, account, f"function:{name}")]
    return ["*"]


def _additional(service: str, action: str, response: Any) -> list[tuple[str, str]]:
    """AWS's additional authorisations (Service Authorization Reference, 'dependent actions' and
    resource types) for the calls genopipe makes: (action, resource) pairs beyond the request's own."""
    if service == "batch" and action == "SubmitJob" and _body(response).get("tags"):
        return [("TagResource", _arn("batch", response.region, response.current_account, "job/*"))]
    return []


def _s3_additional(response: Any, bucket: str | None, key: str | None) -> list[tuple[str, str]]:
    extra = []
    source = response.headers.get("x-amz-copy-source")
    if source and key:  # CopyObject / UploadPartCopy: read the source
        path = urllib.parse.unquote(source.split("?versionId=")[0]).lstrip("/")
        extra.append(("GetObject", f"arn:{_PARTITION}:s3:::{path}"))
    return extra


def _deleted_keys(body: bytes | str | None) -> list[str]:
    """The keys of a DeleteObjects request body."""
    if not body:
        return []
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return []
    return [element.text or "" for element in root.iter() if element.tag.rsplit("}", 1)[-1] == "Key"]


def _denied_message(principal_arn: str, action: str, resource: str) -> str:
    return (
        f"User: {principal_arn} is not authorized to perform: {action} on resource: {resource} "
        f"because no identity-based policy allows the {action} action"
    )


class _S3AccessDenied(BucketAccessDeniedError):
    """moto's S3 access denial (its DeleteObjects falls back on it), with AWS's message."""

    def __init__(self, bucket: str, message: str) -> None:
        super().__init__(bucket)
        self.message = message


class _AccessDenied(AccessDeniedError):
    def __init__(self, message: str) -> None:
        _RESTError.__init__(self, "AccessDenied", message)


class _JsonAccessDenied(JsonRESTError):
    """The denial of a JSON-protocol service, in JSON (moto answers XML, which the SDK cannot parse)."""

    code = 403

    def __init__(self, message: str) -> None:
        super().__init__("AccessDeniedException", message)


_JSON_SERVICES = {"batch", "dynamodb", "states", "events", "logs", "lambda"}


def _request_class(base: type, action: str, conditions: dict[str, str] | None = None) -> type:
    """moto's IAM request for `base`, checking `action` (not the one moto derived), with
    condition values, and denying with AWS's message."""

    class Request(base):
        def __init__(self, **kwargs: Any) -> None:
            kwargs["action"] = action
            super().__init__(**kwargs)

        def _create_aws_request(self) -> Any:
            # moto signs a bodiless request (Lambda's GET ListFunctions) over its parsed
            # parameters, not the empty body the SDK signed
            request = super()._create_aws_request()
            if not self._body and self._method in {"GET", "HEAD", "DELETE"}:
                request.data = b""
            return request

        def check_action_permitted(self, resource: str) -> None:
            self._resource = resource
            if self._action == "sts:GetCallerIdentity":  # always allowed, as on AWS
                return
            permitted, denied = False, False
            for policy in self._access_key.collect_policies():
                document = _ConditionalPolicy(_policy_document(policy), conditions or {})
                result = document.is_action_permitted(self._action, resource)
                denied = denied or result == PermissionResult.DENIED
                permitted = permitted or result == PermissionResult.PERMITTED
            allowed = permitted and not denied
            if _ACTIVE is not None:
                _ACTIVE.decisions.append(Decision(self._access_key.arn, self._action, resource, allowed))
            if not allowed:
                self._raise_access_denied()

        def _raise_access_denied(self) -> None:
            message = _denied_message(self._access_key.arn, self._action, getattr(self, "_resource", "*"))
            if base is S3IAMRequest:
                raise _S3AccessDenied(str(self._data.get("BucketName", "")), message)
            if self._service in _JSON_SERVICES:
                raise _JsonAccessDenied(message)
            raise _AccessDenied(message)

    return Request


def _policy_document(policy: Any) -> str:
    """A policy as JSON text: moto hands over managed policies as objects and the inline policies
    CloudFormation made as dicts (which its own evaluator cannot read)."""
    if isinstance(policy, str):
        return policy
    if isinstance(policy, dict):
        document = policy.get("policy_document", policy)
        return document if isinstance(document, str) else json.dumps(document)
    default = next(version for version in policy.versions if version.is_default)
    return str(default.document) if isinstance(default.document, str) else json.dumps(default.document)


class _ConditionalPolicy(IAMPolicy):
    """An identity policy evaluated with the request's condition values (moto's evaluator denies any
    statement that has a Condition)."""

    def __init__(self, policy: Any, values: dict[str, str]) -> None:
        super().__init__(policy)
        self._values = values

    def is_action_permitted(
        self,
        action: str,
        resource: str = "*",
        principal: str | None = None,
        incoming_condition_values: dict[str, str] | None = None,
    ) -> PermissionResult:
        statements = self._policy_json["Statement"]
        permitted = False
        for statement in statements if isinstance(statements, list) else [statements]:
            unconditioned = {k: v for k, v in statement.items() if k != "Condition"}
            result = IAMPolicy(json.dumps({"Statement": [unconditioned]})).is_action_permitted(
                action, resource
            )
            if result == PermissionResult.NEUTRAL:
                continue
            if not _conditions_hold(statement.get("Condition", {}), self._values):
                continue
            if result == PermissionResult.DENIED:
                return result
            permitted = True
        return PermissionResult.PERMITTED if permitted else PermissionResult.NEUTRAL


def _conditions_hold(conditions: dict[str, dict[str, Any]], values: dict[str, str]) -> bool:
    for operator, keys in conditions.items():
        for key, expected in keys.items():
            patterns = expected if isinstance(expected, list) else [expected]
            actual = values.get(key)
            if actual is None:
                return False
            if operator == "StringLike":
                if not any(fnmatch.fnmatchcase(actual, str(pattern)) for pattern in patterns):
                    return False
            elif operator == "StringEquals":
                if actual not in [str(pattern) for pattern in patterns]:
                    return False
            else:  # an operator this seam does not evaluate: fail closed, visibly
                log.warning("local IAM: condition operator %s not evaluated; denying", operator)
                return False
    return True


# -- the enforcement, installed into this process's moto ------------------------------------------

_ORIGINAL_NORMAL = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action
_ORIGINAL_S3 = ActionAuthenticatorMixin._authenticate_and_authorize_s3_action
_ORIGINAL_LOAD = botocore.credentials.CredentialResolver.load_credentials
_ORIGINAL_SUBMIT = concurrent.futures.ThreadPoolExecutor.submit


def _operation_names(service: str) -> dict[str, str]:
    model = botocore.session.get_session().get_service_model(service)
    return {name.lower(): name for name in model.operation_names}


_BATCH_OPERATIONS = _operation_names("batch")


def _authorising(response: Any) -> bool:
    return bool(ActionAuthenticatorMixin.request_count >= moto_settings.INITIAL_NO_AUTH_ACTION_COUNT)


def _authorize_normal(self: Any, resource: str = "*") -> None:
    if not _authorising(self):
        _ORIGINAL_NORMAL(self, resource)
        return
    service = {"awslambda": "lambda", "stepfunctions": "states"}.get(
        str(self.service_name), str(self.service_name)
    )
    operation = str(self._get_action())
    if service == "batch":
        operation = _BATCH_OPERATIONS.get(operation.lower(), operation)
    action = _IAM_ACTION.get((service, operation), operation)
    checks = [
        (action, found) for found in (_resources(service, action, self) if resource == "*" else [resource])
    ]
    checks += _additional(service, action, self)
    for needed, on in checks:
        self._authenticate_and_authorize_action(_request_class(IAMRequest, needed), on)


def _authorize_s3(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
    if not _authorising(self):
        _ORIGINAL_S3(self, bucket_name, key_name)
        return
    action = str(self.data.get("Action") or self._get_action())
    resource = f"arn:{_PARTITION}:s3:::{bucket_name or '*'}" + (f"/{key_name}" if key_name else "")
    if action == "DeleteObject" and not key_name:  # DeleteObjects: every key is a DeleteObject
        checks = [("DeleteObject", f"{resource}/{key}") for key in _deleted_keys(self.body)]
    else:
        checks = [(action, resource)]
    checks += _s3_additional(self, bucket_name, key_name)
    conditions = None
    if action == "ListBucket":
        conditions = {"s3:prefix": str(self.querystring.get("prefix", [""])[0])}
    for needed, on in checks:
        self._authenticate_and_authorize_action(
            _request_class(S3IAMRequest, needed, conditions if needed == "ListBucket" else None), on
        )


def _submit_in_context(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Thread pools run work with their submitter's context, so an S3 transfer started by a
    handler signs as that handler's role."""
    return _ORIGINAL_SUBMIT(self, contextvars.copy_context().run, fn, *args, **kwargs)


class Enforcement:
    """IAM enforcement for one local stack; `start()` after the server is up, `stop()` when done."""

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self._admin: Principal | None = None
        self._roles: dict[str, Principal] = {}
        self._lock = threading.Lock()
        self.decisions: list[Decision] = []  # every authorisation after the bootstrap, in order

    @property
    def admin(self) -> Principal:
        if self._admin is None:
            raise RuntimeError("local IAM: the admin identity is not bootstrapped")
        return self._admin

    def bootstrap_admin(self, endpoint_url: str, region: str) -> Principal:
        """Create the harness's admin user in the server's first (unauthenticated) requests."""
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        user = iam.create_user(UserName=ADMIN_USER)["User"]
        iam.put_user_policy(
            UserName=ADMIN_USER,
            PolicyName="local-stack-admin",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            ),
        )
        key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
        self._admin = Principal(ADMIN_USER, user["Arn"], key["AccessKeyId"], key["SecretAccessKey"])
        return self._admin

    def role(self, role_arn: str, used_by: str) -> Principal:
        """Credentials of `role_arn` as the service `used_by` (lambda, batch-job, states) gets them."""
        with self._lock:
            cached = self._roles.get(role_arn)
            if cached is not None:
                return cached
            name = role_arn.rsplit("/", 1)[-1]
            role = iam_backends[self.account_id][_PARTITION].get_role(name)
            service = _TRUSTED_SERVICE[used_by]
            trust = IAMPolicy(role.assume_role_policy_document)
            if not _trusts(trust._policy_json, service):
                raise TrustError(f"role {name}: its trust policy does not let {service} assume it")
            session = sts_backends[self.account_id][_PARTITION].assume_role(
                region_name="us-east-1",
                role_session_name=f"genopipe-local-{used_by}",
                role_arn=role_arn,
                policy="",
                duration=SESSION_SECONDS,
                external_id="",
            )
            principal = Principal(
                name, session.arn, session.access_key_id, session.secret_access_key, session.session_token
            )
            self._roles[role_arn] = principal
            return principal

    def install(self) -> None:
        global _ACTIVE
        _ACTIVE = self
        enforcement = self

        def load_credentials(resolver: Any) -> botocore.credentials.Credentials:
            return _PrincipalCredentials(enforcement)

        botocore.credentials.CredentialResolver.load_credentials = load_credentials
        boto3.DEFAULT_SESSION = None  # its cached credentials were resolved before
        ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = _authorize_normal  # type: ignore[method-assign]
        ActionAuthenticatorMixin._authenticate_and_authorize_s3_action = _authorize_s3  # type: ignore[method-assign]
        concurrent.futures.ThreadPoolExecutor.submit = _submit_in_context  # type: ignore[method-assign]

    def uninstall(self) -> None:
        global _ACTIVE
        _ACTIVE = None
        botocore.credentials.CredentialResolver.load_credentials = _ORIGINAL_LOAD
        boto3.DEFAULT_SESSION = None
        ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = _ORIGINAL_NORMAL  # type: ignore[method-assign]
        ActionAuthenticatorMixin._authenticate_and_authorize_s3_action = _ORIGINAL_S3  # type: ignore[method-assign]
        concurrent.futures.ThreadPoolExecutor.submit = _ORIGINAL_SUBMIT  # type: ignore[method-assign]


def _trusts(document: dict[str, Any], service: str) -> bool:
    statements = document.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = statement.get("Action", [])
        actions = actions if isinstance(actions, list) else [actions]
        services = (statement.get("Principal") or {}).get("Service", [])
        services = services if isinstance(services, list) else [services]
        if statement.get("Effect") == "Allow" and "sts:AssumeRole" in actions and service in services:
            return True
    return False


_ACTIVE: Enforcement | None = None


def active() -> Enforcement | None:
    """The installed enforcement, or None when the local stack runs without IAM (`--no-iam`)."""
    return _ACTIVE


# -- the Step Functions interpreter calls Lambda as the state machine's role ----------------------


def _interpreter_module() -> Any:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    return lambda_eval_utils


_ORIGINAL_INTERPRETER_CLIENT = _interpreter_module().boto_client_for


def interpreter_acts_as(enforcement: Enforcement | None, state_machine_role_arn: str | None) -> None:
    """moto's interpreter signs its Lambda calls with fixed keys (`ak`); make it sign as the state
    machine's role (or restore moto's client with `None`)."""
    module = _interpreter_module()
    if enforcement is None or state_machine_role_arn is None:
        module.boto_client_for = _ORIGINAL_INTERPRETER_CLIENT
        return
    from botocore.config import Config
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        role_arn = getattr(state_credentials, "role_arn", None) or state_machine_role_arn
        principal = enforcement.role(str(role_arn), "states")
        return boto3.client(
            service_name=service,
            region_name=region,
            endpoint_url=f"http://localhost:{moto_server_port()}",
            aws_access_key_id=principal.access_key_id,
            aws_secret_access_key=principal.secret_access_key,
            aws_session_token=principal.session_token,
            config=Config(
                parameter_validation=False,
                retries={"max_attempts": 0, "total_max_attempts": 1},
                connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            ),
        )

    module.boto_client_for = client_for

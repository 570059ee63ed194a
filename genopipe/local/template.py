"""`template.yaml` -> plain CloudFormation, offline, the way `sam package` + the SAM transform would.

Local `CodeUri`s become `s3://<code bucket>/<folder>` (the folder is recorded, so the in-process
Lambda runtime finds the handler's source), and `DefinitionUri` becomes the inline `Definition`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

CODE_BUCKET = "genopipe-local-code"
LAYER_PREFIX = "layers/"


class _NoManagedPolicies(ManagedPolicyLoader):
    """Offline: SAM policy templates need no lookup, and named managed policies stay ARNs."""

    def __init__(self) -> None:
        pass

    def load(self) -> dict[str, str]:
        return {}


class TemplateError(Exception):
    pass


@dataclass
class Translated:
    """The CloudFormation template, plus where each code package came from on disk."""

    template: dict[str, Any]
    code_folders: dict[str, Path] = field(default_factory=dict)  # S3 key in CODE_BUCKET -> folder


def load(path: Path) -> dict[str, Any]:
    try:
        document = yaml_parse(path.read_text())
    except Exception as error:
        raise TemplateError(f"{path}: not a readable template: {error}") from error
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path}: not a CloudFormation/SAM template (no Resources)")
    return document


def _code_key(folder: Path, root: Path) -> str:
    return folder.resolve().relative_to(root.resolve()).as_posix().strip("/") or "root"


def _inline_local_artifacts(template: dict[str, Any], root: Path) -> dict[str, Path]:
    folders: dict[str, Path] = {}
    code_uri_default = template.get("Globals", {}).get("Function", {}).get("CodeUri")
    for logical_id, resource in template["Resources"].items():
        properties = resource.setdefault("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function":
            code_uri = properties.get("CodeUri", code_uri_default)
            if isinstance(code_uri, str) and not code_uri.startswith("s3://"):
                folder = root / code_uri
                if not folder.is_dir():
                    raise TemplateError(f"{logical_id}: CodeUri {code_uri}: no such folder under {root}")
                key = _code_key(folder, root)
                folders[key] = folder.resolve()
                properties["CodeUri"] = f"s3://{CODE_BUCKET}/{key}"
        elif resource.get("Type") == "AWS::Serverless::LayerVersion":
            # in-process handlers import genopipe from this checkout: the layer's content is not used
            if isinstance(properties.get("ContentUri"), str):
                properties["ContentUri"] = f"s3://{CODE_BUCKET}/{LAYER_PREFIX}{logical_id}"
        elif resource.get("Type") == "AWS::Serverless::StateMachine":
            uri = properties.get("DefinitionUri")
            if isinstance(uri, str) and not uri.startswith("s3://"):
                definition_path = root / uri
                try:
                    properties["Definition"] = json.loads(definition_path.read_text())
                except (OSError, json.JSONDecodeError) as error:
                    raise TemplateError(
                        f"{definition_path}: not a readable ASL definition: {error}"
                    ) from error
                del properties["DefinitionUri"]
    if code_uri_default is not None:
        template["Globals"]["Function"].pop("CodeUri")
    return folders


def translate(path: Path, parameters: dict[str, str] | None = None) -> Translated:
    """Apply the SAM transform to `path` offline; returns plain CloudFormation."""
    sam = load(path)
    folders = _inline_local_artifacts(sam, path.parent)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the translator needs a region
    try:
        cfn = transform(sam, dict(parameters or {}), _NoManagedPolicies())
    except Exception as error:
        raise TemplateError(f"{path}: the SAM transform failed: {error}") from error
    return Translated(cfn, folders)

"""Print a plain CloudFormation template holding an ASL file as an `AWS::StepFunctions::StateMachine`.

cfn-lint skips `AWS::Serverless::StateMachine`; wrapped like this, its E3601 checks read the ASL.
Every `${Name}` DefinitionSubstitution gets a placeholder Lambda ARN.

    python scripts/asl_stack.py statemachine/pipeline.asl.json > /tmp/stack.json
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

PLACEHOLDER = "arn:aws:lambda:us-east-1:123456789012:function:placeholder"


def wrap(asl_path: Path) -> dict[str, object]:
    text = asl_path.read_text()
    try:
        definition = json.loads(text)
    except json.JSONDecodeError as error:
        raise SystemExit(f"{asl_path}: not JSON: {error}") from error
    names = sorted(set(re.findall(r"\$\{(\w+)\}", text)))
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "states.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ]
                    }
                },
            },
            "StateMachine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Definition": definition,
                    "DefinitionSubstitutions": dict.fromkeys(names, PLACEHOLDER),
                },
            },
        },
    }


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: asl_stack.py STATEMACHINE.asl.json")
    print(json.dumps(wrap(Path(sys.argv[1])), indent=2))

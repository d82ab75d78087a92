"""template.yaml, the one truth, checked for what a deploy relies on.

cfn-lint must report nothing, and the invariants below hold for every resource of a kind, so a
queue, function or policy added later is checked without touching this file: queues that feed
functions have a DLQ, a visibility timeout of 6x the consumer's timeout and encryption; SQS
events report partial batch failures; the HTTP API authorizes with a JWT by default; the main
table has TTL and the PollDue index; no policy grants everything; every handler module exists;
the layer is built for the functions' runtime and architecture with pyproject's dependencies.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from crmsync_local.template import load_yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
TEMPLATE: dict[str, Any] = load_yaml(TEMPLATE_PATH)
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
FUNCTION_GLOBALS: dict[str, Any] = TEMPLATE.get("Globals", {}).get("Function", {})

SAM_DEFAULT_TIMEOUT = 3
VISIBILITY_FACTOR = 6  # AWS: queue visibility timeout >= 6x the function timeout


# ---------------------------------------------------------------- helpers


def _of_type(*types: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in RESOURCES.items() if res.get("Type") in types}


def _props(name: str) -> dict[str, Any]:
    props: dict[str, Any] = RESOURCES[name].get("Properties", {})
    return props


def _function_setting(name: str, key: str, default: Any = None) -> Any:
    return _props(name).get(key, FUNCTION_GLOBALS.get(key, default))


def _referenced(value: Any, attribute: str | None = None) -> str | None:
    """The logical id behind a Ref, or a GetAtt of the given attribute; None otherwise."""
    if isinstance(value, dict) and "Ref" in value and attribute is None:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        getatt = value["Fn::GetAtt"]
        parts = getatt.split(".", 1) if isinstance(getatt, str) else list(getatt)
        if len(parts) == 2 and (attribute is None or parts[1] == attribute):
            return str(parts[0])
    return None


def _target(value: Any, attribute: str | None = None) -> str:
    name = _referenced(value, attribute)
    assert name is not None, f"expected a reference to a resource of this template: {value!r}"
    return name


FUNCTIONS = _of_type("AWS::Serverless::Function")
QUEUES = _of_type("AWS::SQS::Queue")
SQS_EVENTS: list[tuple[str, str, dict[str, Any]]] = [
    (function, event_name, event.get("Properties", {}))
    for function, res in FUNCTIONS.items()
    for event_name, event in res.get("Properties", {}).get("Events", {}).items()
    if event.get("Type") == "SQS"
]
SQS_EVENT_IDS = [f"{function}.{event}" for function, event, _ in SQS_EVENTS]


def _dead_letter_queue(queue: str) -> str:
    redrive = _props(queue).get("RedrivePolicy")
    assert isinstance(redrive, dict), f"{queue} has no RedrivePolicy"
    return _target(redrive.get("deadLetterTargetArn"), "Arn")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _statements(value: Any) -> Iterator[dict[str, Any]]:
    """Every IAM-style statement anywhere below value (inline, bucket, queue, key policies)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Statement":
                yield from (s for s in (item if isinstance(item, list) else [item]) if s)
            else:
                yield from _statements(item)
    elif isinstance(value, list):
        for item in value:
            yield from _statements(item)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------- cfn-lint


def _cfn_lint() -> str:
    beside_python = Path(sys.executable).with_name("cfn-lint")
    found = str(beside_python) if beside_python.exists() else shutil.which("cfn-lint")
    if found is None:
        pytest.fail("cfn-lint is not installed: it is in the dev extra of pyproject.toml")
    return found


def test_cfn_lint_reports_nothing() -> None:
    result = subprocess.run(
        [_cfn_lint(), "--", TEMPLATE_PATH.name],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    findings = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, f"cfn-lint exited {result.returncode}:\n{findings}"
    assert findings == ""


# ---------------------------------------------------------------- queues


def test_there_are_queue_driven_functions() -> None:
    assert SQS_EVENTS, "no function has an SQS event: the template changed shape"


@pytest.mark.parametrize(("function", "event", "props"), SQS_EVENTS, ids=SQS_EVENT_IDS)
def test_sqs_event_reports_partial_batch_failures(
    function: str, event: str, props: dict[str, Any]
) -> None:
    assert "ReportBatchItemFailures" in props.get("FunctionResponseTypes", []), (
        f"{function}.{event}: a failed record would redeliver the whole batch"
    )


@pytest.mark.parametrize(("function", "event", "props"), SQS_EVENTS, ids=SQS_EVENT_IDS)
def test_source_queue_has_dead_letter_queue(
    function: str, event: str, props: dict[str, Any]
) -> None:
    queue = _target(props.get("Queue"), "Arn")
    assert queue in QUEUES, f"{function}.{event} reads {queue}, not a queue of this template"
    redrive = _props(queue).get("RedrivePolicy", {})
    max_receive = redrive.get("maxReceiveCount")
    assert isinstance(max_receive, int), f"{queue}: RedrivePolicy needs a maxReceiveCount"
    assert max_receive >= 1
    dlq = _dead_letter_queue(queue)
    assert dlq in QUEUES, f"{queue}: its DLQ {dlq} is not a queue of this template"
    assert dlq != queue


@pytest.mark.parametrize(("function", "event", "props"), SQS_EVENTS, ids=SQS_EVENT_IDS)
def test_source_queue_visibility_is_six_times_consumer_timeout(
    function: str, event: str, props: dict[str, Any]
) -> None:
    queue = _target(props.get("Queue"), "Arn")
    timeout = _function_setting(function, "Timeout", SAM_DEFAULT_TIMEOUT)
    visibility = _props(queue).get("VisibilityTimeout")
    assert visibility == VISIBILITY_FACTOR * timeout, (
        f"{queue}: VisibilityTimeout {visibility}, want {VISIBILITY_FACTOR} x {function} "
        f"Timeout {timeout} = {VISIBILITY_FACTOR * timeout}"
    )


@pytest.mark.parametrize("queue", sorted(QUEUES))
def test_queue_is_encrypted(queue: str) -> None:
    props = _props(queue)
    assert props.get("SqsManagedSseEnabled") is True or props.get("KmsMasterKeyId"), (
        f"{queue}: set SqsManagedSseEnabled: true or KmsMasterKeyId"
    )


def test_sync_queue_and_its_dead_letter_queue_are_fifo() -> None:
    assert _props("SyncQueue").get("FifoQueue") is True
    assert _props(_dead_letter_queue("SyncQueue")).get("FifoQueue") is True


REDRIVEN_QUEUES = sorted(q for q in QUEUES if "RedrivePolicy" in _props(q))


@pytest.mark.parametrize("queue", [q for q in REDRIVEN_QUEUES if _props(q).get("FifoQueue")])
def test_fifo_queue_dead_letters_into_fifo_queue(queue: str) -> None:
    assert _props(_dead_letter_queue(queue)).get("FifoQueue") is True


@pytest.mark.parametrize("queue", REDRIVEN_QUEUES)
def test_dead_letter_queue_has_an_alarm(queue: str) -> None:
    dlq = _dead_letter_queue(queue)
    watched = {
        _referenced(dim.get("Value"), "QueueName")
        for alarm in _of_type("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("Namespace") == "AWS/SQS"
        for dim in alarm["Properties"].get("Dimensions", [])
        if dim.get("Name") == "QueueName"
    }
    assert dlq in watched, f"nobody is told when jobs land in {dlq}"


# ---------------------------------------------------------------- HTTP API


@pytest.mark.parametrize("api", sorted(_of_type("AWS::Serverless::HttpApi")))
def test_http_api_default_authorizer_is_jwt(api: str) -> None:
    auth = _props(api).get("Auth", {})
    default = auth.get("DefaultAuthorizer")
    assert default, f"{api}: routes would be public unless each one opts in"
    authorizer = auth.get("Authorizers", {}).get(default)
    assert authorizer is not None, f"{api}: DefaultAuthorizer {default} is not declared"
    jwt = authorizer.get("JwtConfiguration", {})
    assert jwt.get("issuer"), f"{api}.{default}: JWT issuer missing"
    assert jwt.get("audience"), f"{api}.{default}: JWT audience missing"
    assert str(authorizer.get("IdentitySource", "")).startswith("$request.header.")


# ---------------------------------------------------------------- tables


def test_main_table_has_ttl_and_poll_due_index() -> None:
    props = _props("MainTable")
    ttl = props.get("TimeToLiveSpecification", {})
    assert ttl.get("Enabled") is True
    assert ttl.get("AttributeName") == "expires_at"
    indexes = {gsi["IndexName"]: gsi for gsi in props.get("GlobalSecondaryIndexes", [])}
    assert {"GSI1", "GSI2", "PollDue"} <= set(indexes)
    schema = {k["KeyType"]: k["AttributeName"] for k in indexes["PollDue"]["KeySchema"]}
    assert schema == {"HASH": "poll_shard", "RANGE": "next_poll_at"}
    projected = set(indexes["PollDue"]["Projection"].get("NonKeyAttributes", []))
    assert {"account_id", "company_id"} <= projected, "the dispatcher reads these from PollDue"


def test_idempotency_table_expires_records() -> None:
    ttl = _props("IdempotencyTable").get("TimeToLiveSpecification", {})
    # Powertools' DynamoDBPersistenceLayer writes its expiry to "expiration" by default.
    assert ttl == {"AttributeName": "expiration", "Enabled": True}


def _uses_idempotency(function: str) -> bool:
    code = ROOT / str(_function_setting(function, "CodeUri", ""))
    return any(
        "aws_lambda_powertools.utilities.idempotency" in source.read_text()
        for source in code.rglob("*.py")
    )


def test_the_idempotency_table_is_granted_exactly_to_its_users() -> None:
    """Least privilege both ways: a function that records idempotency may write the table,
    and one that does not (mail_sync is idempotent by its checkpoints) gets no grant."""
    for name in FUNCTIONS:
        tables = {
            _referenced(policy["DynamoDBCrudPolicy"].get("TableName"))
            for policy in _props(name).get("Policies", [])
            if isinstance(policy, dict) and "DynamoDBCrudPolicy" in policy
        }
        assert ("IdempotencyTable" in tables) == _uses_idempotency(name), name


# ---------------------------------------------------------------- IAM


def _policy_values() -> Iterator[tuple[str, Any]]:
    for name, res in RESOURCES.items():
        props = res.get("Properties", {})
        for key in ("Policies", "ManagedPolicyArns"):
            if key in props:
                yield name, props[key]


def test_no_full_access_managed_policies() -> None:
    offenders = [
        f"{name}: {text}"
        for name, value in _policy_values()
        for text in _strings(value)
        if re.search(r"FullAccess", text)
    ]
    assert offenders == []


def _is_account_root_key_statement(resource_type: str, statement: dict[str, Any]) -> bool:
    principal = statement.get("Principal", {})
    aws = principal.get("AWS") if isinstance(principal, dict) else None
    return resource_type == "AWS::KMS::Key" and any(s.endswith(":root") for s in _strings(aws))


def test_no_statement_allows_everything_on_everything() -> None:
    offenders = []
    for name, res in RESOURCES.items():
        for statement in _statements(res.get("Properties", {})):
            if statement.get("Effect") != "Allow":
                continue
            actions = [a for a in _as_list(statement.get("Action", [])) if isinstance(a, str)]
            wildcard_action = "NotAction" in statement or any(
                a == "*" or a.endswith(":*") for a in actions
            )
            wildcard_resource = "NotResource" in statement or "*" in _as_list(
                statement.get("Resource", [])
            )
            if wildcard_action and wildcard_resource:
                if _is_account_root_key_statement(res["Type"], statement):
                    continue  # a key policy's root statement: "*" there means this key only
                offenders.append(f"{name}: {statement}")
    assert offenders == []


# ---------------------------------------------------------------- code and layer


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_handler_module_exists_in_code_uri(function: str) -> None:
    code_uri = _function_setting(function, "CodeUri")
    handler = _function_setting(function, "Handler")
    assert isinstance(code_uri, str), f"{function}: CodeUri must be a local directory"
    assert isinstance(handler, str), f"{function}: Handler must be module.function"
    assert "." in handler, f"{function}: Handler must be module.function"
    module, _, func = handler.rpartition(".")
    source = ROOT / code_uri / (module.replace(".", "/") + ".py")
    assert source.is_file(), f"{function}: {source.relative_to(ROOT)} does not exist"
    assert re.search(rf"^def {re.escape(func)}\(", source.read_text(), re.MULTILINE), (
        f"{function}: {source.relative_to(ROOT)} defines no {func}()"
    )


def _layers() -> dict[str, dict[str, Any]]:
    return _of_type("AWS::Serverless::LayerVersion")


@pytest.mark.parametrize("layer", sorted(_layers()))
def test_layer_builds_for_the_functions_runtime_and_architecture(layer: str) -> None:
    runtime = FUNCTION_GLOBALS["Runtime"]
    architectures = FUNCTION_GLOBALS.get("Architectures", ["x86_64"])
    metadata = RESOURCES[layer].get("Metadata", {})
    assert metadata.get("BuildMethod") == runtime
    assert [metadata.get("BuildArchitecture", "x86_64")] == architectures
    assert runtime in _props(layer).get("CompatibleRuntimes", [])
    assert set(architectures) <= set(_props(layer).get("CompatibleArchitectures", ["x86_64"]))
    for function in FUNCTIONS:
        assert _function_setting(function, "Runtime") == runtime
        assert _function_setting(function, "Architectures", ["x86_64"]) == architectures


def _requirement_key(line: str) -> tuple[str, frozenset[str], str]:
    req = Requirement(line)
    return canonicalize_name(req.name), frozenset(req.extras), str(sorted(map(str, req.specifier)))


def test_layer_ships_the_package_and_pyproject_dependencies() -> None:
    content = ROOT / str(_props("CrmsyncLayer")["ContentUri"])
    # A python layer is unpacked under /opt/python: the package sits at the top of ContentUri.
    assert (content / "crmsync" / "__init__.py").is_file()
    lines = (content / "requirements.txt").read_text().splitlines()
    shipped = {_requirement_key(ln) for ln in (ln.split("#")[0].strip() for ln in lines) if ln}
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert shipped == {_requirement_key(d) for d in declared}

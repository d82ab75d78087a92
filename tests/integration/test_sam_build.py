"""`sam build` produces a deployable build: one folder per function and a layer that holds
the domain package with dependencies built for the functions' architecture (arm64)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
ELF_MACHINE_AARCH64 = 183


def _sam() -> str:
    local = REPO / ".local" / "samenv" / "bin" / "sam"
    found = str(local) if local.exists() else shutil.which("sam")
    assert found, "the SAM CLI is missing: `make sam` installs it (make test does)"
    return found


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    return int.from_bytes(header[18:20], "little")


def test_sam_build_makes_the_layer_and_every_function(tmp_path: Path) -> None:
    build = tmp_path / "build"
    result = subprocess.run(
        [_sam(), "build", "--template", "template.yaml", "--build-dir", str(build)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    layer = build / "CrmsyncLayer" / "python"
    assert (layer / "crmsync" / "runtime.py").is_file()
    assert (layer / "aws_lambda_powertools").is_dir()
    native = sorted(layer.glob("pydantic_core/*.so"))
    assert native, "pydantic-core's native module is missing from the layer"
    assert {_elf_machine(lib) for lib in native} == {ELF_MACHINE_AARCH64}
    for function in ("ApiFunction", "PollDispatcherFunction", "MailSyncFunction"):
        assert (build / function / "app.py").is_file(), function
    assert "CrmsyncLayer" in (build / "template.yaml").read_text()

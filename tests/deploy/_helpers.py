"""Shared bits of the deployment tests: the repository's files, parsed."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
NGINX_DOCKERFILE = ROOT / "deploy" / "nginx" / "Dockerfile"
NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
TASK_DEFINITIONS = {env: ROOT / "deploy" / "ecs" / f"{env}.json" for env in ("staging", "production")}
WORKFLOWS = ROOT / ".github" / "workflows"

# What the staging job (ci.yml) substitutes into the task definitions, with plausible values.
PLACEHOLDERS = {
    "__AWS_ACCOUNT_ID__": "123456789012",
    "__AWS_REGION__": "eu-west-1",
    "__APP_HOST__": "bmi.example.com",
    "__GIT_SHA__": "0123456789abcdef0123456789abcdef01234567",
    "__IMAGE__": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/bmi-progression:0123456789abcdef",
    "__NGINX_IMAGE__": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/bmi-progression:nginx-0123456789abcdef",
}


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        logical.append(current)
        current = ""
    pairs = []
    for item in logical:
        keyword, _, rest = item.partition(" ")
        pairs.append((keyword.upper(), rest.strip()))
    return pairs


def exec_form(arguments: str) -> list[str]:
    """A CMD/ENTRYPOINT/HEALTHCHECK CMD argument list (exec form only: no shell in between)."""
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


def image_command() -> list[str]:
    """The command the image runs: ENTRYPOINT + CMD, from the Dockerfile itself."""
    found = dict(dockerfile_instructions())
    entrypoint = exec_form(found["ENTRYPOINT"]) if "ENTRYPOINT" in found else []
    return entrypoint + exec_form(found["CMD"])


def healthcheck_command(path: Path = DOCKERFILE) -> list[str]:
    _, arguments = next(pair for pair in dockerfile_instructions(path) if pair[0] == "HEALTHCHECK")
    match = re.search(r"\bCMD\s+(\[.*\])\s*$", arguments)
    assert match, f"HEALTHCHECK must use the exec form: {arguments}"
    return exec_form(match.group(1))


def rendered_task_definition(env: str) -> dict:
    text = TASK_DEFINITIONS[env].read_text()
    for token, value in PLACEHOLDERS.items():
        text = text.replace(token, value)
    return json.loads(text)


def container(task_definition: dict, name: str = "web") -> dict:
    (found,) = [c for c in task_definition["containerDefinitions"] if c["name"] == name]
    return found


def environment(task_definition: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(task_definition)["environment"]}


def nginx_config(*, port: int, upstream_port: int, temp_directory: Path | None = None) -> str:
    """deploy/nginx/nginx.conf listening on 127.0.0.1:port, in front of gunicorn on upstream_port.

    Its pid file and five temporary paths move from /tmp/ to temp_directory when given. Each
    replacement must occur where expected, so the file under test cannot drift from the deployed one.
    """
    replacements = [
        (r"listen 8080 default_server;", f"listen 127.0.0.1:{port} default_server;", 1),
        (r"server 127\.0\.0\.1:8000;", f"server 127.0.0.1:{upstream_port};", 1),
    ]
    if temp_directory is not None:
        replacements.append((r" /tmp/([\w.]+);", f" {temp_directory}/\\1;", 6))  # the pid file, 5 paths
    text = NGINX_CONF.read_text()
    for pattern, replacement, count in replacements:
        text, found = re.subn(pattern, replacement, text)
        assert found == count, f"{pattern!r} should occur {count} time(s) in {NGINX_CONF}, not {found}"
    return text

"""The ECS task definitions, validated offline against botocore's RegisterTaskDefinition input shape."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import textwrap

import botocore.session
import pytest
from botocore.validate import ParamValidator

from tests.deploy._helpers import (
    NGINX_CONF,
    NGINX_DOCKERFILE,
    PLACEHOLDERS,
    ROOT,
    TASK_DEFINITIONS,
    container,
    dockerfile_instructions,
    environment,
    healthcheck_command,
    image_command,
    rendered_task_definition,
)

ENVIRONMENTS = sorted(TASK_DEFINITIONS)


@pytest.fixture(scope="module")
def register_shape():
    model = botocore.session.get_session().get_service_model("ecs")
    return model.operation_model("RegisterTaskDefinition").input_shape


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_task_definition_is_a_valid_register_request(env, register_shape):
    report = ParamValidator().validate(rendered_task_definition(env), register_shape)
    assert not report.has_errors(), report.generate_report()


def test_validator_catches_a_mistake(register_shape):
    # The check above is only worth something if a wrong file fails it.
    broken = rendered_task_definition("staging")
    container(broken, "nginx")["portMappings"][0]["containerPort"] = "8080"
    broken["containerDefinitions"][0]["healthcheck"] = {}
    report = ParamValidator().validate(broken, register_shape)
    assert report.has_errors()
    assert "containerPort" in report.generate_report() and "healthcheck" in report.generate_report()


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_only_known_placeholders_remain_to_fill(env):
    text = TASK_DEFINITIONS[env].read_text()
    for token in PLACEHOLDERS:
        text = text.replace(token, "")
    assert "__" not in text


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_secrets_come_from_ssm_by_arn_never_from_plain_environment(env):
    task = rendered_task_definition(env)
    web = container(task)
    secrets = {item["name"]: item["valueFrom"] for item in web["secrets"]}
    assert {"SECRET_KEY", "DATABASE_URL"} <= set(secrets)
    for arn in secrets.values():
        assert arn.startswith("arn:aws:ssm:eu-west-1:123456789012:parameter/bmi-progression/" + env + "/")
    assert not set(secrets) & set(environment(task))
    assert task["executionRoleArn"] != task["taskRoleArn"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_container_matches_the_image(env):
    task = rendered_task_definition(env)
    web = container(task)
    user = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "USER"][-1]
    assert web["user"] == user
    assert web["readonlyRootFilesystem"] is True
    # The only writable place: /tmp (Prometheus files), a task volume.
    assert [m["containerPath"] for m in web["mountPoints"]] == ["/tmp"]  # noqa: S108 - a path in the container
    assert environment(task)["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")  # noqa: S108
    # gunicorn listens on the task's localhost only: nginx (below) is the one way in.
    assert "portMappings" not in web
    assert environment(task)["GUNICORN_HOST"] == "127.0.0.1" and environment(task)["PORT"] == "8000"
    # Only nginx connects, from 127.0.0.1: gunicorn's default trust, not "*".
    assert "FORWARDED_ALLOW_IPS" not in environment(task)
    assert web["healthCheck"]["command"] == ["CMD", *healthcheck_command()]
    assert "command" not in web and "entryPoint" not in web, "the image's own command must run: " + str(image_command())
    logs = web["logConfiguration"]
    assert logs["logDriver"] == "awslogs" and logs["options"]["awslogs-group"] == f"/ecs/bmi-progression-{env}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_nginx_sidecar_is_the_way_in_and_matches_its_image_and_config(env):
    task = rendered_task_definition(env)
    nginx = container(task, "nginx")
    config = NGINX_CONF.read_text()
    # The load balancer's target: nginx's port, which its configuration listens on.
    (mapping,) = nginx["portMappings"]
    assert mapping["containerPort"] == 8080 and mapping["name"] == "http"
    assert re.search(r"^\s*listen 8080 default_server;$", config, flags=re.M)
    # It proxies to gunicorn on the shared localhost, at the web container's PORT.
    upstream = re.search(r"^\s*server 127\.0\.0\.1:(\d+);$", config, flags=re.M)
    assert upstream and upstream.group(1) == environment(task)["PORT"]
    # Started once the app answers its health check, so the balancer never sees a 502 at start.
    assert nginx["dependsOn"] == [{"containerName": "web", "condition": "HEALTHY"}]
    assert nginx["essential"] is True and nginx["image"] == PLACEHOLDERS["__NGINX_IMAGE__"]
    assert nginx["healthCheck"]["command"] == ["CMD", *healthcheck_command(NGINX_DOCKERFILE)]
    assert "location = /nginx-health" in config
    # Non-root, read-only root filesystem; it writes only to its own /tmp volume (pid, buffers).
    user = [arguments for keyword, arguments in dockerfile_instructions(NGINX_DOCKERFILE) if keyword == "USER"][-1]
    assert nginx["user"] == user == "101:101"
    assert nginx["readonlyRootFilesystem"] is True
    tmp = "/tmp"  # noqa: S108 - a path in the container
    assert nginx["mountPoints"] == [{"sourceVolume": "nginx-tmp", "containerPath": tmp, "readOnly": False}]
    written = re.findall(r"^\s*(?:pid|\w+_temp_path) (\S+);$", config, flags=re.M)
    assert len(written) == 6 and all(path.startswith(tmp + "/") for path in written), written
    assert {"name": "nginx-tmp"} in task["volumes"]
    # Enough descriptors for its worker_connections (two per proxied request).
    (nofile,) = nginx["ulimits"]
    connections = int(re.search(r"worker_connections (\d+);", config).group(1))
    assert nofile["softLimit"] == int(re.search(r"worker_rlimit_nofile (\d+);", config).group(1)) >= 2 * connections
    # Stopped before gunicorn (reverse dependency order) and gracefully within ECS's wait.
    assert ("STOPSIGNAL", "SIGQUIT") in dockerfile_instructions(NGINX_DOCKERFILE)
    assert nginx["stopTimeout"] > int(re.search(r"worker_shutdown_timeout (\d+)s;", config).group(1))
    logs = nginx["logConfiguration"]
    assert logs["options"]["awslogs-group"] == f"/ecs/bmi-progression-{env}"
    assert logs["options"]["awslogs-stream-prefix"] == "nginx"
    assert "error_log /dev/stderr" in config and "access_log /dev/stdout" in config
    # One access line per request, nginx's (it has gunicorn's status and time): gunicorn's is off.
    assert environment(task)["GUNICORN_ACCESS_LOG"] == "0"


def test_nginx_refuses_bodies_above_djangos_limit_and_headers_above_gunicorns():
    from django.conf import settings

    config = NGINX_CONF.read_text()
    size = re.search(r"client_max_body_size (\d+)m;", config).group(1)
    assert int(size) * 1024 * 1024 == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    for env in ENVIRONMENTS:
        assert "DATA_UPLOAD_MAX_MEMORY_SIZE" not in environment(rendered_task_definition(env))
    # One buffer holds gunicorn's longest request line (limit_request_line, 4094) and its CRLF.
    size = re.search(r"large_client_header_buffers \d+ (\d+)k;", config).group(1)
    gunicorn_config = (ROOT / "bmiproject" / "gunicorn.conf.py").read_text()
    assert "limit_request_line" not in gunicorn_config and "limit_request_field_size" not in gunicorn_config
    assert int(size) * 1024 == 4094 + 2 and int(size) * 1024 <= 8190  # gunicorn's defaults


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_ecs_waits_longer_than_gunicorns_graceful_shutdown(env):
    # Otherwise ECS SIGKILLs workers still finishing requests.
    config = (ROOT / "bmiproject" / "gunicorn.conf.py").read_text()
    assert 'env_int("GUNICORN_GRACEFUL_TIMEOUT", 25' in config
    assert "GUNICORN_GRACEFUL_TIMEOUT" not in environment(rendered_task_definition(env))
    assert container(rendered_task_definition(env))["stopTimeout"] > 25


def test_staging_and_production_differ_only_in_size_and_names():
    staging, production = (rendered_task_definition(env) for env in ("staging", "production"))

    def normalised(task):
        text = json.dumps(task).replace("production", "ENV").replace("staging", "ENV")
        task = json.loads(text)
        for key in ("cpu", "memory"):
            task.pop(key)
        for item in container(task)["environment"]:
            if item["name"] == "WEB_CONCURRENCY":
                item["value"] = "N"
        return task

    assert normalised(staging) == normalised(production)


# --- deploy/ecs/run-task.sh, against a stand-in for the aws CLI ----------------------------------


def _fake_aws(tmp_path, *, exit_code: str):
    script = tmp_path / "aws"
    script.write_text(
        textwrap.dedent(f"""\
            #!/usr/bin/env bash
            echo "$*" >> "{tmp_path}/calls"
            case "$2" in
              run-task) echo "arn:aws:ecs:eu-west-1:123456789012:task/bmi/abc" ;;
              wait) ;;
              describe-tasks)
                case "$*" in
                  *exitCode*) echo "{exit_code}" ;;
                  *) echo "Essential container in task exited" ;;
                esac ;;
            esac
            """)
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    env = {
        **os.environ,
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "ECS_CLUSTER": "bmi",
        "ECS_SUBNETS": "subnet-1,subnet-2",
        "ECS_SECURITY_GROUPS": "sg-1",
    }
    return env


def _run_task(env, *command):
    return subprocess.run(
        ["bash", str(ROOT / "deploy" / "ecs" / "run-task.sh"), "arn:td:7", *command],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_run_task_succeeds_when_the_command_exits_zero(tmp_path):
    result = _run_task(_fake_aws(tmp_path, exit_code="0"), "python", "manage.py", "migrate", "--no-input")
    assert result.returncode == 0, result.stdout + result.stderr
    calls = (tmp_path / "calls").read_text()
    assert "ecs run-task --cluster bmi --task-definition arn:td:7 --launch-type FARGATE" in calls
    assert '"command": ["python", "manage.py", "migrate", "--no-input"]' in calls
    assert "subnets=[subnet-1,subnet-2],securityGroups=[sg-1],assignPublicIp=DISABLED" in calls
    assert "ecs wait tasks-stopped --cluster bmi --tasks arn:aws:ecs:eu-west-1:123456789012:task/bmi/abc" in calls


@pytest.mark.parametrize("exit_code", ["1", "None"])
def test_run_task_fails_when_the_command_fails_or_never_ran(tmp_path, exit_code):
    result = _run_task(_fake_aws(tmp_path, exit_code=exit_code), "python", "manage.py", "migrate")
    assert result.returncode == 1
    assert f"exit code {exit_code}" in result.stdout
    assert "'python manage.py migrate' failed." in result.stderr


# --- deploy/ecs/rollup-schedule.json: the monitoring fold, an EventBridge Scheduler schedule -------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rollup_schedule_is_a_valid_create_schedule_request_running_the_fold(env):
    from django.core.management import get_commands

    text = (ROOT / "deploy" / "ecs" / "rollup-schedule.json").read_text()
    network = {
        "__ECS_CLUSTER__": "bmi",
        "__SUBNET_A__": "subnet-1",
        "__SUBNET_B__": "subnet-2",
        "__SECURITY_GROUP__": "sg-1",
    }
    for token, value in {**PLACEHOLDERS, **network, "__ENV__": env}.items():
        text = text.replace(token, value)
    assert "__" not in text
    schedule = json.loads(text)
    shape = botocore.session.get_session().get_service_model("scheduler").operation_model("CreateSchedule").input_shape
    report = ParamValidator().validate(schedule, shape)
    assert not report.has_errors(), report.generate_report()
    # The environment's own task definition (its latest revision), in the private subnets like run-task.sh.
    task = rendered_task_definition(env)
    ecs = schedule["Target"]["EcsParameters"]
    assert ecs["TaskDefinitionArn"].endswith(f":task-definition/{task['family']}")
    assert (
        ecs["LaunchType"] == "FARGATE"
        and ecs["NetworkConfiguration"]["awsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    )
    (override,) = json.loads(schedule["Target"]["Input"])["containerOverrides"]
    assert override["name"] == container(task)["name"]
    assert override["command"] == ["python", "manage.py", "rollup_monitoring"]
    assert "rollup_monitoring" in get_commands()
    assert schedule["ScheduleExpression"] == "rate(5 minutes)"

"""The GitHub Actions workflow: valid, audited for security, and doing what the deployment needs.

check-jsonschema (GitHub's schema), actionlint (types, expressions, shellcheck on every script) and
zizmor (security audit) run here as in CI's lint job, offline and pinned in requirements-dev.txt,
so a new finding fails the test suite too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy._helpers import ROOT, WORKFLOWS, dockerfile_instructions

GITHUB = ROOT / ".github"
DEPENDABOT = GITHUB / "dependabot.yml"
TRUST_POLICY = ROOT / "deploy" / "iam" / "github-deploy-trust-policy.json"
MAIN_PUSH = "github.event_name == 'push' && github.ref == 'refs/heads/main'"


def tool(name: str) -> str:
    """The pinned tool from this checkout's virtualenv, else from PATH (CI's lint job)."""
    found = shutil.which(name, path=str(ROOT / ".venv" / "bin")) or shutil.which(name)
    assert found, f"{name} is not installed (requirements-dev.txt)"
    return found


def run(*command: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)


def load(name: str = "ci.yml") -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    workflow["on"] = workflow.pop(True)
    return workflow


def steps(job: dict) -> list[dict]:
    return job["steps"]


def commands(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in steps(job))


def by_name(job: dict) -> dict[str, dict]:
    return {step.get("name", step.get("uses")): step for step in steps(job)}


def assumes_aws_role(job: dict) -> bool:
    return any(step.get("uses", "").startswith("aws-actions/configure-aws-credentials@") for step in steps(job))


# --- The linters, and proof that each of them can fail ----------------------------------------------


def test_the_workflow_and_dependabot_match_their_schemas():
    assert sorted(path.name for path in WORKFLOWS.glob("*.y*ml")) == ["ci.yml"]
    workflows = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOWS / "ci.yml"))
    assert workflows.returncode == 0, workflows.stdout + workflows.stderr
    dependabot = run(tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(DEPENDABOT))
    assert dependabot.returncode == 0, dependabot.stdout + dependabot.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(broken))
    assert result.returncode != 0


def actionlint(*files: str, cwd=ROOT) -> subprocess.CompletedProcess:
    # The pinned shellcheck, named explicitly: actionlint silently skips scripts when it finds none.
    return run(tool("actionlint"), "-no-color", "-shellcheck", tool("shellcheck"), *files, cwd=cwd)


def test_actionlint_finds_nothing():
    result = actionlint()
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_bad_expression_and_a_shellcheck_finding(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ steps.nowhere.outputs.x }}\n"
        "      - run: echo $HOME/$1\n"
    )
    result = actionlint(str(bad), cwd=tmp_path)
    assert result.returncode != 0
    assert 'property "nowhere" is not defined' in result.stdout, result.stdout
    assert "SC2086" in result.stdout, result.stdout


def zizmor(path) -> subprocess.CompletedProcess:
    return run(tool("zizmor"), "--offline", "--no-progress", "--color", "never", str(path))


def test_zizmor_finds_nothing():
    result = zizmor(GITHUB)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout, result.stdout


def test_zizmor_catches_what_the_workflows_used_to_do(tmp_path):
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "deploy.yml").write_text(
        "on:\n  workflow_run:\n    workflows: [CI]\n    types: [completed]\n"
        "permissions:\n  contents: read\n  id-token: write\n"
        "jobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - uses: actions/checkout@v4.2.2\n"
        # A second job: with one, the workflow's permissions are that job's.
        "  b:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: 'true'\n"
    )
    result = zizmor(tmp_path / ".github")
    assert result.returncode != 0
    for audit in ("dangerous-triggers", "excessive-permissions", "unpinned-uses", "artipacked"):
        assert audit in result.stdout, result.stdout


# --- Supply chain: pinned actions, no stored credentials ---------------------------------------------


def test_every_action_is_pinned_to_a_commit_with_its_version_in_a_comment():
    lines = [line for line in (WORKFLOWS / "ci.yml").read_text().splitlines() if re.match(r"\s*(- )?uses:", line)]
    assert lines
    commit_of = {}
    for line in lines:
        match = re.fullmatch(r"\s*(?:- )?uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)", line)
        assert match, f"not pinned to a commit with '# vX.Y.Z': {line.strip()}"
        action, commit, version = match.groups()
        # One action, one release: a half-done upgrade would leave two.
        assert commit_of.setdefault(action, (commit, version)) == (commit, version), line


def test_every_checkout_leaves_no_credentials_behind():
    for name, job in load()["jobs"].items():
        for step in steps(job):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, name


def test_dependabot_updates_actions_pip_and_docker_weekly_and_grouped():
    config = yaml.safe_load(DEPENDABOT.read_text())
    updates = {update["package-ecosystem"]: update for update in config["updates"]}
    assert set(updates) == {"github-actions", "pip", "docker"}
    for update in updates.values():
        assert update["schedule"]["interval"] == "weekly"
        assert update["groups"]
        assert update["cooldown"]["default-days"] >= 7


# --- Least privilege and the trust model --------------------------------------------------------------


def test_only_the_jobs_that_assume_the_aws_role_get_an_oidc_token():
    ci = load()
    assert ci["permissions"] == {"contents": "read"}
    text = (WORKFLOWS / "ci.yml").read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    deploying = {name for name, job in ci["jobs"].items() if assumes_aws_role(job)}
    assert deploying == {"staging", "production"}
    for name, job in ci["jobs"].items():
        expected = {"contents": "read", "id-token": "write"} if name in deploying else None
        assert job.get("permissions") == expected, name


def test_no_trigger_runs_a_forks_code_with_this_repositorys_privileges():
    # Neither workflow_run nor pull_request_target: a pull request runs with its own, read-only rights.
    assert set(load()["on"]) == {"push", "pull_request"}


def test_deploy_runs_only_on_main_after_every_check_of_the_same_run_passed():
    jobs = load()["jobs"]
    assert jobs["staging"]["needs"] == ["lint", "test", "container"]
    assert jobs["staging"]["if"] == MAIN_PUSH
    # Skipped with staging: `needs` carries the condition.
    assert jobs["production"]["needs"] == "staging"
    for name in ("staging", "production"):
        assert jobs[name]["environment"]["name"] == name
        assert jobs[name]["concurrency"] == {"group": "deploy-main", "cancel-in-progress": False}
        (credentials,) = [s for s in steps(jobs[name]) if s.get("uses", "").startswith("aws-actions/configure")]
        assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
        assert credentials["with"]["allowed-account-ids"] == "${{ vars.AWS_ACCOUNT_ID }}"


def test_a_run_on_main_is_never_cancelled_by_a_newer_push():
    concurrency = load()["concurrency"]
    assert concurrency["cancel-in-progress"] == "${{ github.ref != 'refs/heads/main' }}"
    assert "github.ref == 'refs/heads/main' && github.sha" in concurrency["group"]


def rendered_trust_policy(environment: str) -> dict:
    text = TRUST_POLICY.read_text()
    for token, value in {
        "__AWS_ACCOUNT_ID__": "123456789012",
        "__GITHUB_REPOSITORY__": "example/bmi-progression",
        "__ENVIRONMENT__": environment,
    }.items():
        text = text.replace(token, value)
    return json.loads(text)


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_each_deploy_role_trusts_only_jobs_in_its_own_environment(environment):
    assert environment in {job["environment"]["name"] for job in load()["jobs"].values() if "environment" in job}
    (statement,) = rendered_trust_policy(environment)["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].endswith(":oidc-provider/token.actions.githubusercontent.com")
    # StringEquals, no wildcard: a branch, a tag or a pull request has a different subject.
    assert statement["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": f"repo:example/bmi-progression:environment:{environment}",
        }
    }


# --- What each job does -----------------------------------------------------------------------------


def test_ci_lints_and_tests_against_postgres_with_chromium():
    ci = load()
    lint, test = ci["jobs"]["lint"], ci["jobs"]["test"]
    lint_commands = commands(lint)
    for command in (
        "ruff check .",
        "ruff format --check .",
        "hadolint --failure-threshold style Dockerfile",
        "check-jsonschema --builtin-schema vendor.github-workflows",
        "check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml",
        "actionlint",
        "zizmor --offline --no-progress .github/",
    ):
        assert command in lint_commands
    assert test["services"]["postgres"]["image"] == "postgres:15"
    assert test["env"]["DATABASE_URL"].startswith("postgres://")
    assert test["env"]["CONTAINER_TEST_ELSEWHERE"] == "1"  # .ci/run deselects the container test here
    assert "apt-get install --yes --no-install-recommends chromium" in commands(test)
    assert "bash .ci/run" in commands(test)


def test_the_container_job_builds_once_on_the_official_base_and_tests_that_image():
    container = load()["jobs"]["container"]
    (default_base,) = [
        args for keyword, args in dockerfile_instructions() if keyword == "ARG" and args.startswith("PYTHON_IMAGE=")
    ]
    assert container["env"]["PYTHON_IMAGE"] == default_base.partition("=")[2] == "python:3.11-slim-bookworm"
    assert container["env"]["CONTAINER_ENGINE"] == "docker"
    assert container["env"]["CONTAINER_IMAGE"] == "bmi-progression:${{ github.sha }}"
    assert container["services"]["postgres"]["ports"] == ["5432:5432"]
    assert container["env"]["DATABASE_URL"].startswith("postgres://postgres:postgres@127.0.0.1:5432/")
    runs = [step.get("run", "") for step in steps(container)]
    (build,) = [i for i, command in enumerate(runs) if "docker build" in command and "CONTAINER_IMAGE" in command]
    assert '--build-arg PYTHON_IMAGE="$PYTHON_IMAGE" --tag "$CONTAINER_IMAGE" .' in runs[build]
    (test,) = [i for i, command in enumerate(runs) if "pytest" in command]
    assert runs[test].startswith("python -m pytest -m container tests/container")
    (save,) = [i for i, command in enumerate(runs) if "docker save" in command]
    upload = next(i for i, step in enumerate(steps(container)) if step.get("uses", "").startswith("actions/upload-"))
    assert build < test < save < upload
    for index in (save, upload):
        assert steps(container)[index]["if"] == MAIN_PUSH
    assert steps(container)[upload]["with"]["name"] == "image"
    # Nothing another run wrote flows into the image production runs.
    assert not any("cache" in step.get("with", {}) for step in steps(container))


def test_staging_pushes_the_tested_image_migrates_deploys_then_smoke_tests():
    staging = load()["jobs"]["staging"]
    names = [step.get("name", step.get("uses")) for step in steps(staging)]
    order = [
        "Download the image the container job tested",
        "Push the tested image and the nginx image, tagged with the git SHA",
        "Register the production task definition",
        "Migrate the staging database (one-off task on the new image)",
        "Deploy to the staging service",
        "Smoke test staging",
    ]
    assert [name for name in names if name in order] == order
    found = by_name(staging)
    assert found["Download the image the container job tested"]["with"]["name"] == "image"
    push = found["Push the tested image and the nginx image, tagged with the git SHA"]
    assert push["env"]["TESTED"] == load()["jobs"]["container"]["env"]["CONTAINER_IMAGE"]
    assert push["env"]["TESTED_NGINX"] == load()["jobs"]["container"]["env"]["CONTAINER_NGINX_IMAGE"]
    assert push["env"]["IMAGE"].endswith(":${{ github.sha }}")
    assert "docker load" in push["run"] and "docker push" in push["run"]
    assert "docker build" not in commands(staging) + commands(load()["jobs"]["production"])
    migrate = found["Migrate the staging database (one-off task on the new image)"]["run"]
    assert "run-task.sh" in migrate and "manage.py migrate --no-input" in migrate
    deploy_step = found["Deploy to the staging service"]
    assert deploy_step["uses"].startswith("aws-actions/amazon-ecs-deploy-task-definition@")
    assert deploy_step["with"]["wait-for-service-stability"] is True
    assert "manage.py smoke_test --url" in found["Smoke test staging"]["run"]
    assert found["Smoke test staging"]["env"]["SMOKE_TEST_TOKEN"] == "${{ secrets.SMOKE_TEST_TOKEN }}"


def test_production_waits_for_approval_and_gets_the_revision_registered_before_staging():
    jobs = load()["jobs"]
    staging, production = jobs["staging"], jobs["production"]
    assert production["environment"]["name"] == "production"
    assert staging["outputs"]["production-task-definition"] == (
        "${{ steps.register-production.outputs.task-definition-arn }}"
    )
    found = by_name(production)
    arn = "${{ needs.staging.outputs.production-task-definition }}"
    assert found["Migrate the production database (one-off task on the new image)"]["env"]["TASK_DEFINITION"] == arn
    rollout = found["Deploy the revision registered before staging to the production service"]
    assert rollout["env"]["TASK_DEFINITION"] == arn
    assert "aws ecs update-service" in rollout["run"] and "aws ecs wait services-stable" in rollout["run"]
    assert "manage.py smoke_test --url" in found["Smoke test production"]["run"]
    names = list(found)
    assert names.index("Smoke test production") > names.index(
        "Deploy the revision registered before staging to the production service"
    )


def test_the_nginx_image_is_built_on_its_pinned_base_tested_and_set_in_both_task_definitions():
    jobs = load()["jobs"]
    container = jobs["container"]
    # The name the container test reads (tests/container/conftest.py): it runs this image in front
    # of the app's instead of building one on the local Debian stand-in.
    assert container["env"]["CONTAINER_NGINX_IMAGE"] == "bmi-progression:nginx-${{ github.sha }}"
    assert '"CONTAINER_NGINX_IMAGE"' in (ROOT / "tests" / "container" / "conftest.py").read_text()
    runs = [step.get("run", "") for step in steps(container)]
    # No NGINX_BASE_IMAGE build argument: GitHub builds on the Dockerfile's default, the pinned image.
    (build,) = [i for i, command in enumerate(runs) if "deploy/nginx/Dockerfile" in command]
    assert runs[build].startswith('docker build --pull --tag "$CONTAINER_NGINX_IMAGE" --file deploy/nginx/Dockerfile')
    assert "--build-arg" not in runs[build]
    (test,) = [i for i, command in enumerate(runs) if "pytest" in command]
    (save,) = [i for i, command in enumerate(runs) if "docker save" in command]
    assert build < test < save
    assert 'docker save "$CONTAINER_IMAGE" "$CONTAINER_NGINX_IMAGE"' in runs[save]
    staging = jobs["staging"]
    by_name = {step.get("name"): step for step in steps(staging)}
    push = by_name["Push the tested image and the nginx image, tagged with the git SHA"]
    assert push["env"]["NGINX_IMAGE"].endswith(":nginx-${{ github.sha }}")
    assert 'docker push "$NGINX_IMAGE"' in push["run"]
    for env in ("staging", "production"):
        nginx = by_name[f"Set the nginx image in the {env} task definition"]
        assert nginx["with"] == {
            "task-definition": f"rendered/{env}.json",
            "container-name": "nginx",
            "image": "${{ steps.image.outputs.nginx-image }}",
        }
        # The web image is set on the file that already has nginx's, so the result has both.
        web = by_name[f"Set the image in the {env} task definition"]
        assert web["with"]["task-definition"] == f"${{{{ steps.{env}-nginx.outputs.task-definition }}}}"
        assert web["with"]["container-name"] == "web"
    assert "hadolint --failure-threshold style Dockerfile deploy/nginx/Dockerfile" in commands(
        load("ci.yml")["jobs"]["lint"]
    )

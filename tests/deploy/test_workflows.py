"""The GitHub Actions workflows: valid against GitHub's schema, and doing what the deployment needs."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy._helpers import ROOT, WORKFLOWS

CHECK_JSONSCHEMA = shutil.which("check-jsonschema", path=str(ROOT / ".venv" / "bin")) or shutil.which(
    "check-jsonschema"
)


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    workflow["on"] = workflow.pop(True)
    return workflow


def steps(job: dict) -> list[dict]:
    return job["steps"]


def commands(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in steps(job))


def test_workflows_match_the_github_workflow_schema():
    assert CHECK_JSONSCHEMA, "check-jsonschema is not installed (requirements-dev.txt)"
    files = sorted(str(path) for path in WORKFLOWS.glob("*.yml"))
    assert len(files) == 2
    result = subprocess.run(
        [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    result = subprocess.run(
        [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.github-workflows", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_every_action_is_pinned_to_a_full_version_or_commit(name):
    uses = re.findall(r"uses:\s*(\S+)", (WORKFLOWS / name).read_text())
    assert uses
    for action in uses:
        ref = action.partition("@")[2]
        assert re.fullmatch(r"v\d+\.\d+\.\d+|[0-9a-f]{40}", ref), f"{action} is not pinned"


def test_ci_lints_and_tests_against_postgres_with_chromium():
    ci = load("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    lint, test = ci["jobs"]["lint"], ci["jobs"]["test"]
    lint_commands = commands(lint)
    for command in (
        "ruff check .",
        "ruff format --check .",
        "hadolint --failure-threshold style Dockerfile",
        "check-jsonschema --builtin-schema vendor.github-workflows",
    ):
        assert command in lint_commands
    assert test["services"]["postgres"]["image"] == "postgres:15"
    assert test["env"]["DATABASE_URL"].startswith("postgres://")
    assert "apt-get install --yes --no-install-recommends chromium" in commands(test)
    assert "bash .ci/run" in commands(test)
    assert ci["permissions"] == {"contents": "read"}


def test_deploy_runs_only_after_ci_succeeded_on_main():
    deploy = load("deploy.yml")
    trigger = deploy["on"]["workflow_run"]
    assert trigger == {"workflows": ["CI"], "types": ["completed"], "branches": ["main"]}
    assert load("ci.yml")["name"] == "CI"
    condition = deploy["jobs"]["staging"]["if"]
    assert "github.event.workflow_run.conclusion == 'success'" in condition
    assert "github.event.workflow_run.event == 'push'" in condition
    assert deploy["jobs"]["production"]["needs"] == "staging"


def test_deploy_never_overlaps_and_uses_oidc_not_stored_keys():
    deploy = load("deploy.yml")
    assert deploy["concurrency"] == {"group": "deploy-main", "cancel-in-progress": False}
    assert deploy["permissions"]["id-token"] == "write"
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    for job in deploy["jobs"].values():
        (credentials,) = [
            s for s in steps(job) if s.get("uses", "").startswith("aws-actions/configure-aws-credentials")
        ]
        assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"


def test_deploy_builds_by_sha_migrates_then_deploys_staging_then_smoke_tests():
    staging = load("deploy.yml")["jobs"]["staging"]
    names = [step.get("name", step.get("uses")) for step in steps(staging)]
    order = [
        "Build and push the image, tagged with the git SHA",
        "Register the production task definition",
        "Migrate the staging database (one-off task on the new image)",
        "Deploy to the staging service",
        "Smoke test staging",
    ]
    assert [name for name in names if name in order] == order
    by_name = {step.get("name"): step for step in steps(staging)}
    build = by_name["Build and push the image, tagged with the git SHA"]
    assert build["env"]["IMAGE"].endswith(":${{ github.event.workflow_run.head_sha }}")
    assert "docker push" in build["run"]
    assert "run-task.sh" in by_name["Migrate the staging database (one-off task on the new image)"]["run"]
    assert (
        "manage.py migrate --no-input" in by_name["Migrate the staging database (one-off task on the new image)"]["run"]
    )
    deploy_step = by_name["Deploy to the staging service"]
    assert deploy_step["uses"].startswith("aws-actions/amazon-ecs-deploy-task-definition@")
    assert deploy_step["with"]["wait-for-service-stability"] is True
    assert "manage.py smoke_test --url" in by_name["Smoke test staging"]["run"]
    assert by_name["Smoke test staging"]["env"]["SMOKE_TEST_TOKEN"] == "${{ secrets.SMOKE_TEST_TOKEN }}"


def test_production_waits_for_approval_and_gets_the_revision_registered_before_staging():
    deploy = load("deploy.yml")
    staging, production = deploy["jobs"]["staging"], deploy["jobs"]["production"]
    assert production["environment"]["name"] == "production"
    assert staging["outputs"]["production-task-definition"] == (
        "${{ steps.register-production.outputs.task-definition-arn }}"
    )
    by_name = {step.get("name"): step for step in steps(production)}
    arn = "${{ needs.staging.outputs.production-task-definition }}"
    assert by_name["Migrate the production database (one-off task on the new image)"]["env"]["TASK_DEFINITION"] == arn
    rollout = by_name["Deploy the revision registered before staging to the production service"]
    assert rollout["env"]["TASK_DEFINITION"] == arn
    assert "aws ecs update-service" in rollout["run"] and "aws ecs wait services-stable" in rollout["run"]
    assert "manage.py smoke_test --url" in by_name["Smoke test production"]["run"]
    names = list(by_name)
    assert names.index("Smoke test production") > names.index(
        "Deploy the revision registered before staging to the production service"
    )


def test_deploy_builds_the_nginx_image_and_sets_it_in_both_task_definitions():
    staging = load("deploy.yml")["jobs"]["staging"]
    by_name = {step.get("name"): step for step in steps(staging)}
    build = by_name["Build and push the nginx image, tagged with the git SHA"]
    assert build["env"]["IMAGE"].endswith(":nginx-${{ github.event.workflow_run.head_sha }}")
    assert "--file deploy/nginx/Dockerfile deploy/nginx" in build["run"] and "docker push" in build["run"]
    for env in ("staging", "production"):
        nginx = by_name[f"Set the nginx image in the {env} task definition"]
        assert nginx["with"] == {
            "task-definition": f"rendered/{env}.json",
            "container-name": "nginx",
            "image": "${{ steps.nginx-image.outputs.image }}",
        }
        # The web image is set on the file that already has nginx's, so the result has both.
        web = by_name[f"Set the image in the {env} task definition"]
        assert web["with"]["task-definition"] == f"${{{{ steps.{env}-nginx.outputs.task-definition }}}}"
        assert web["with"]["container-name"] == "web"
    assert "hadolint --failure-threshold style Dockerfile deploy/nginx/Dockerfile" in commands(
        load("ci.yml")["jobs"]["lint"]
    )

#!/usr/bin/env bash
# Run a one-off command (migrate, train, rollback) as an ECS task on a given task definition
# revision, wait for it to stop, and exit with the command's own exit code.
#
#   deploy/ecs/run-task.sh TASK_DEFINITION_ARN python manage.py migrate --no-input
#
# Reads ECS_CLUSTER, ECS_SUBNETS and ECS_SECURITY_GROUPS (comma-separated IDs) from the
# environment; the task runs in the private subnets, like the web tasks, so it reaches RDS.
set -euo pipefail

if [ "$#" -lt 2 ]; then
  echo "usage: $0 TASK_DEFINITION_ARN COMMAND [ARG...]" >&2
  exit 2
fi
: "${ECS_CLUSTER:?set ECS_CLUSTER}" "${ECS_SUBNETS:?set ECS_SUBNETS}" "${ECS_SECURITY_GROUPS:?set ECS_SECURITY_GROUPS}"
task_definition=$1
shift

# JSON built by Python, not by string pasting, so arguments with spaces or quotes survive.
overrides=$(python3 -c 'import json, sys; print(json.dumps({"containerOverrides": [{"name": "web", "command": sys.argv[1:]}]}))' "$@")
network="awsvpcConfiguration={subnets=[${ECS_SUBNETS}],securityGroups=[${ECS_SECURITY_GROUPS}],assignPublicIp=DISABLED}"

echo "Running '$*' on ${task_definition} in cluster ${ECS_CLUSTER}."
task_arn=$(aws ecs run-task \
  --cluster "$ECS_CLUSTER" \
  --task-definition "$task_definition" \
  --launch-type FARGATE \
  --network-configuration "$network" \
  --overrides "$overrides" \
  --started-by "github-actions" \
  --query 'tasks[0].taskArn' --output text)
if [ -z "$task_arn" ] || [ "$task_arn" = "None" ]; then
  echo "ECS did not start the task (see 'failures' in aws ecs run-task's output)." >&2
  exit 1
fi
echo "Started ${task_arn}; waiting for it to stop."

aws ecs wait tasks-stopped --cluster "$ECS_CLUSTER" --tasks "$task_arn"

exit_code=$(aws ecs describe-tasks --cluster "$ECS_CLUSTER" --tasks "$task_arn" \
  --query "tasks[0].containers[?name=='web'] | [0].exitCode" --output text)
reason=$(aws ecs describe-tasks --cluster "$ECS_CLUSTER" --tasks "$task_arn" \
  --query 'tasks[0].stoppedReason' --output text)
echo "Task stopped: ${reason}; exit code ${exit_code}. Its output is in CloudWatch Logs (stream prefix 'web')."
if [ "$exit_code" != "0" ]; then
  # "None" means the container never ran (image pull or secret failure): also a failure.
  echo "'$*' failed." >&2
  exit 1
fi
echo "'$*' succeeded."

"""Gunicorn configuration: the production web server, used by the Docker image's CMD.

Every value can be overridden from the environment; a bad value stops the server at start-up
with a message naming the variable (the same helpers as settings.py). See docs/deployment.md.
"""

import os

from bmiproject.env import env_bool, env_int, env_list, env_str

# 0.0.0.0 when gunicorn faces clients itself (`docker run -p`); in ECS the task definitions set
# 127.0.0.1, so only the nginx container of the same task (which shares its localhost) reaches it.
bind = f"{env_str('GUNICORN_HOST', '0.0.0.0')}:{env_int('PORT', 8000, minimum=1)}"  # noqa: S104


def _default_workers() -> int:
    # sched_getaffinity respects the CPUs this container may use, unlike os.cpu_count().
    return 2 * len(os.sched_getaffinity(0)) + 1


# Heroku's and the buildpacks' name for it; the task definition sets it from the task's vCPUs.
workers = env_int("WEB_CONCURRENCY", _default_workers(), minimum=1)
# Threads let a worker keep idle keep-alive connections from the load balancer open without
# blocking; a prediction is a few microseconds of CPU and one INSERT, so threads rarely contend.
worker_class = "gthread"
threads = env_int("GUNICORN_THREADS", 4, minimum=1)

# Loaded once in the master: a broken configuration (ImproperlyConfigured) stops the container at
# once instead of a crash loop of workers, and NumPy's pages are shared between workers.
preload_app = env_bool("GUNICORN_PRELOAD", True)

# A request that takes longer than this is a bug (the slowest, a 10,000-row batch, takes well
# under a second); the worker is killed and replaced.
timeout = env_int("GUNICORN_TIMEOUT", 30, minimum=1)
# On SIGTERM (ECS stopping a task) workers finish their in-flight requests for up to this long.
# Keep it below the task definition's stopTimeout, or ECS sends SIGKILL first.
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 25, minimum=1)
# Longer than the AWS load balancer's 60 s idle timeout: the balancer must close idle connections
# first, otherwise it may send a request on a socket gunicorn is closing and answer 502.
keepalive = env_int("GUNICORN_KEEPALIVE", 75, minimum=0)

# Recycle workers now and then so a slow leak cannot grow without bound; the jitter keeps them
# from all restarting at the same moment. 0 turns it off.
max_requests = env_int("GUNICORN_MAX_REQUESTS", 10_000, minimum=0)
max_requests_jitter = env_int("GUNICORN_MAX_REQUESTS_JITTER", 1_000, minimum=0)

# Containers log to their streams: CloudWatch (awslogs) collects both. In ECS the nginx sidecar
# writes every request's access line (with gunicorn's status and time), so the task definitions
# turn this one off: a second line per request, formatted in Python, was 8 % of a prediction's CPU
# (docs/performance.md). On by default, for a container run without nginx in front.
accesslog = "-" if env_bool("GUNICORN_ACCESS_LOG", True) else None
errorlog = "-"
loglevel = env_str("GUNICORN_LOG_LEVEL", "info")
# The client as the load balancer saw it, and the duration in milliseconds.
access_log_format = '%({x-forwarded-for}i)s %(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'

# Which peers may set X-Forwarded-For/-Proto. In ECS only the load balancer can reach a task
# (security group), whose address changes, so the task definition sets "*"; the default trusts
# only this host.
forwarded_allow_ips = ",".join(env_list("FORWARDED_ALLOW_IPS", ["127.0.0.1", "::1"]))

# The heartbeat file lives in memory: a disk-backed /tmp can stall workers, and the image's root
# filesystem is read-only in ECS.
worker_tmp_dir = env_str("GUNICORN_WORKER_TMP_DIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else None)  # noqa: S108
# Gunicorn's runtime control socket would need a writable home directory; nothing uses it.
control_socket_disable = True

# Prometheus multiprocess mode (see predictor/monitoring/metrics.py): every worker writes its
# counters to files in this directory. It must exist before the app is loaded, and files left by
# an earlier run of the server would be summed into this run's counters, so start empty.
_prometheus_dir = env_str("PROMETHEUS_MULTIPROC_DIR")
if _prometheus_dir:
    os.makedirs(_prometheus_dir, exist_ok=True)
    for _name in os.listdir(_prometheus_dir):
        if _name.endswith(".db"):
            os.remove(os.path.join(_prometheus_dir, _name))


def when_ready(server):
    # With the app preloaded in the master, import what the first request would otherwise import
    # in each worker (the URLconf, the views, DRF), then move every object into the permanent
    # generation: a worker's garbage collections then never write to these objects, so their pages
    # stay shared with the master copy-on-write instead of being copied into every worker.
    if server.cfg.preload_app:
        import gc

        from django.urls import get_resolver

        get_resolver().url_patterns  # noqa: B018 - imports every view module
        gc.freeze()


def child_exit(server, worker):
    # A dead worker's gauges must stop counting as live; its counters stay in the totals.
    if _prometheus_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

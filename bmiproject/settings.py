"""Settings for the BMI -> diabetes progression service.

Everything that differs between a laptop, CI and production comes from the environment
(see README "Configuration"). Defaults are safe for a newcomer's first run; production must set
SECRET_KEY and ALLOWED_HOSTS, or the process refuses to start.
"""

import datetime
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from bmiproject import devdb
from bmiproject.env import env_bool, env_float, env_int, env_ip_networks, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment (any long random string), "
            "or set DEBUG=1 for local development."
        )
    SECRET_KEY = "django-insecure-local-development-only"  # noqa: S105 - DEBUG only, never served

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- Production and security (HTTPS behind the load balancer; docs/deployment.md) -------------
# Each setting has its own variable; with DEBUG off the defaults are the safe ones, and
# `manage.py check --deploy` passes with no warnings (tests/deploy/test_settings.py).

# TLS ends at the AWS load balancer, which sets X-Forwarded-Proto on every request it forwards
# (replacing any value a client sent), so Django may trust it to tell HTTPS from HTTP. Turn it off
# when nothing in front of gunicorn sets the header, or clients could claim HTTPS.
if env_bool("SECURE_PROXY_SSL_HEADER_ENABLED", not DEBUG):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Probes come over plain HTTP by IP (HealthCheckMiddleware answers them first anyway); a redirect
# to HTTPS would fail them.
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^readyz/?$", r"^metrics/?$"]
# Sent on HTTPS responses only. A year, subdomains included; preload (hstspreload.org) is the
# domain owner's decision, so it is opt-in (the task definitions opt in).
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = env_str("SECURE_REFERRER_POLICY", "same-origin")
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# No page of ours is meant to be framed; DENY rules out clickjacking.
X_FRAME_OPTIONS = "DENY"
# Sent by predictor.middleware.ContentSecurityPolicyMiddleware; "" turns it off. The pages need no
# inline script or style and nothing from another host. /docs (Swagger UI) adds inline styles only.
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
)
CONTENT_SECURITY_POLICY_DOCS = CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
# Only the admin sends messages, and its users always have a session. The default storage also
# tries a signed cookie, whose signer it builds on every request, prediction API calls included.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
# --- End of production and security ----------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "predictor",
]

MIDDLEWARE = [
    # First, so that load balancers probing /healthz by IP are answered before ALLOWED_HOSTS.
    "predictor.middleware.HealthCheckMiddleware",
    # Prometheus scrapes each task by IP, over HTTP: an authorized scrape is answered before ALLOWED_HOSTS.
    "predictor.monitoring.middleware.MetricsScrapeMiddleware",
    # After the health checks (probes are not traffic); times everything else, per URL route.
    "predictor.monitoring.middleware.PrometheusMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "predictor.middleware.ContentSecurityPolicyMiddleware",
    # Before anything reads a body: Django would read a chunked one as empty.
    "predictor.middleware.LengthRequiredMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Any answer to a request with credentials (session cookie, Authorization) gets no-store.
    "predictor.accounts.middleware.PersonalNoStoreMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "bmiproject.urls"
WSGI_APPLICATION = "bmiproject.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL everywhere. CI and production set DATABASE_URL (postgres://user:password@host:5432/name);
# without it a developer's run (DEBUG on, or the test settings) gets the embedded server in .pgdata/.
DATABASE_URL = env_str("DATABASE_URL")
if not DATABASE_URL:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DATABASE_URL is not set. Set it to the PostgreSQL database's URL (README, Configuration), "
            "or set DEBUG=1 for local development on the embedded PostgreSQL."
        )
    DATABASE_URL = devdb.database_url()
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("CONN_MAX_AGE", 60, minimum=0),
        # Off by default: the ping (SELECT 1) before a request's first query doubled the round trips
        # of a prediction (docs/performance.md). Without it, a connection that died while idle (a
        # database restart) fails one request with a 503, after which Django discards it.
        conn_health_checks=env_bool("CONN_HEALTH_CHECKS", False),
    )
}

# --- Sign-in: lockout, sessions, API tokens (predictor/accounts/; README "Security") ------------

# django-axes first: it refuses a locked-out sign-in before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# After this many failed sign-ins for one username, or from one client address, further attempts
# (the right password included) are refused for LOGIN_LOCKOUT_MINUTES; a success resets the count.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# The client address is read as the API's throttling reads it (NUM_PROXIES, X-Forwarded-For).
AXES_CLIENT_IP_CALLABLE = "predictor.accounts.lockout.client_ip"
AXES_LOCKOUT_CALLABLE = "predictor.accounts.lockout.lockout_response"
# Failures are kept (and reset); successful sign-ins are not logged to a table that only grows.
AXES_DISABLE_ACCESS_LOG = True
AXES_SENSITIVE_PARAMETERS = ["csrfmiddlewaretoken"]
# Its start-up banner would open every manage.py command's output.
AXES_VERBOSE = False

# Sessions: 14 days (Django's default) for clinicians; staff sessions open the registry and the
# prediction log, so they end STAFF_SESSION_HOURS after sign-in (predictor/accounts/signals.py).
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 14 * 24 * 3600, minimum=60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", False)
STAFF_SESSION_SECONDS = env_int("STAFF_SESSION_HOURS", 8, minimum=1) * 3600

# API tokens (django-rest-knox): stored as SHA-512 digests, named, several per user, each with an
# expiry; revoked by deleting them, and when their user's password changes or the user is
# deactivated. Created with `manage.py create_token`; sent as "Authorization: Token <secret>".
KNOX_TOKEN_MODEL = "predictor.ApiToken"  # noqa: S105 - a model name, not a secret
API_TOKEN_DAYS = env_int("API_TOKEN_DAYS", 90, minimum=1)
API_TOKEN_MAX_DAYS = env_int("API_TOKEN_MAX_DAYS", 365, minimum=1)
if API_TOKEN_DAYS > API_TOKEN_MAX_DAYS:
    raise ImproperlyConfigured("API_TOKEN_DAYS must not exceed API_TOKEN_MAX_DAYS.")
# knox's own migrations would create its AuthToken table even though ours replaces that model:
# an empty table whose foreign key to the users would only get in the way (flush, user deletes).
MIGRATION_MODULES = {"knox": None}
REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Token",
    # Recognisable to secret scanners and to a person reading a leaked log line.
    "TOKEN_PREFIX": "bmi_",
    "TOKEN_TTL": datetime.timedelta(days=API_TOKEN_DAYS),
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Largest request body Django will read: a 10,000-value batch is about 200 kB of JSON.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024, minimum=1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # Django's default config gives "django" its own console handler (with DEBUG) and lets it
    # propagate to the root's too: every warning printed twice under runserver. One handler, the root's.
    # (django.server, runserver's request lines, keeps its own handler and does not propagate.)
    "loggers": {"django": {"handlers": [], "level": "INFO", "propagate": True}},
}

# --- The model and serving -------------------------------------------------------------------

# A trained version may serve only if its held-out R² exceeds this (the original design's gate).
PREDICTOR_PROMOTION_THRESHOLD = env_float("PREDICTOR_PROMOTION_THRESHOLD", 0.4)
# R² is at most 1: a gate of 1 or more would let no version serve, ever.
if not -1.0 <= PREDICTOR_PROMOTION_THRESHOLD < 1.0:
    raise ImproperlyConfigured("PREDICTOR_PROMOTION_THRESHOLD must be from -1 up to (not including) 1.")
# Plausible BMI in kg/m²; requests and training rows outside are refused as input errors.
PREDICTOR_BMI_MIN = env_float("PREDICTOR_BMI_MIN", 10.0)
PREDICTOR_BMI_MAX = env_float("PREDICTOR_BMI_MAX", 80.0)
if not PREDICTOR_BMI_MIN < PREDICTOR_BMI_MAX:
    raise ImproperlyConfigured("PREDICTOR_BMI_MIN must be below PREDICTOR_BMI_MAX.")
PREDICTOR_BATCH_MAX = env_int("PREDICTOR_BATCH_MAX", 10_000, minimum=1)
# Nominal coverage of the prediction interval every answer carries (stored with each version at
# training time; predictor/ml/intervals.py).
PREDICTOR_INTERVAL_LEVEL = env_float("PREDICTOR_INTERVAL_LEVEL", 0.95)
if not 0.5 <= PREDICTOR_INTERVAL_LEVEL < 1.0:
    raise ImproperlyConfigured("PREDICTOR_INTERVAL_LEVEL must be from 0.5 up to (not including) 1, e.g. 0.95.")
# Predictions are open to anonymous callers unless this is set.
PREDICTOR_PREDICTIONS_REQUIRE_AUTH = env_bool("PREDICTOR_PREDICTIONS_REQUIRE_AUTH", False)
# How long prediction logs are kept, in days (manage.py prune_predictions uses it by default).
PREDICTOR_LOG_RETENTION_DAYS = env_int("PREDICTOR_LOG_RETENTION_DAYS", 365, minimum=1)
# Git SHA or release of the running code, recorded with each trained version.
PREDICTOR_CODE_VERSION = env_str("CODE_VERSION") or env_str("GIT_SHA") or ""

# --- Monitoring: observed outcomes, live quality, drift, Prometheus ----------------------------

# Plausible observed progression; outcomes outside are refused (the diabetes data spans 25..346).
PREDICTOR_OUTCOME_MIN = env_float("PREDICTOR_OUTCOME_MIN", 0.0)
PREDICTOR_OUTCOME_MAX = env_float("PREDICTOR_OUTCOME_MAX", 1000.0)
if not PREDICTOR_OUTCOME_MIN < PREDICTOR_OUTCOME_MAX:
    raise ImproperlyConfigured("PREDICTOR_OUTCOME_MIN must be below PREDICTOR_OUTCOME_MAX.")
# check_model judges live R² and coverage only with at least this many outcomes, and drift only with at least
# this many served predictions: fewer are noise, not evidence.
PREDICTOR_MONITOR_MIN_OUTCOMES = env_int("PREDICTOR_MONITOR_MIN_OUTCOMES", 30, minimum=2)
PREDICTOR_MONITOR_MIN_PREDICTIONS = env_int("PREDICTOR_MONITOR_MIN_PREDICTIONS", 100, minimum=1)
# PSI above this is drift (the usual reading: < 0.1 stable, 0.1-0.25 watch, > 0.25 drift).
PREDICTOR_MONITOR_PSI_ALERT = env_float("PREDICTOR_MONITOR_PSI_ALERT", 0.25)
# check_model alerts when live coverage is below the interval's level with a one-sided binomial
# test p-value under this (predictor/monitoring/coverage.py): one false alarm in 100 checks.
PREDICTOR_MONITOR_COVERAGE_ALPHA = env_float("PREDICTOR_MONITOR_COVERAGE_ALPHA", 0.01)
if not 0.0 < PREDICTOR_MONITOR_COVERAGE_ALPHA < 0.5:
    raise ImproperlyConfigured("PREDICTOR_MONITOR_COVERAGE_ALPHA must lie strictly between 0 and 0.5, e.g. 0.01.")
# /metrics: open to staff sessions, to "Authorization: Bearer <token>" when set, and to these IPs.
PREDICTOR_METRICS_TOKEN = env_str("PREDICTOR_METRICS_TOKEN") or ""
# Addresses or networks ("10.0.0.0/16"); a typo must stop start-up, not silently refuse the scraper.
PREDICTOR_METRICS_ALLOWED_IPS = env_ip_networks("PREDICTOR_METRICS_ALLOWED_IPS")
# The live-quality gauges run aggregate queries; each worker reuses them for this many seconds.
PREDICTOR_METRICS_CACHE_SECONDS = env_int("PREDICTOR_METRICS_CACHE_SECONDS", 60, minimum=0)

# --- REST API (predictor/api/) ----------------------------------------------------------------

_THROTTLE_RATE_UNITS = {"s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day"}


def _throttle_rate(name: str, default: str) -> str | None:
    """A DRF rate like "600/min" from the environment; "off" disables the scope."""
    raw = (env_str(name) or default).strip()
    if raw.lower() in {"off", "none", "0"}:
        return None
    count, _, unit = raw.partition("/")
    if not (count.isdigit() and int(count) > 0 and unit in _THROTTLE_RATE_UNITS):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a rate like '600/min' (units s, min, hour, day) or 'off'.")
    return raw


# Per client (user, or IP for anonymous callers), per process: with LocMemCache each gunicorn worker
# counts on its own, so the effective limit is up to workers × rate. Benchmarks set them to "off".
PREDICTOR_THROTTLE_PREDICT = _throttle_rate("PREDICTOR_THROTTLE_PREDICT", "600/min")
PREDICTOR_THROTTLE_BATCH = _throttle_rate("PREDICTOR_THROTTLE_BATCH", "60/min")
PREDICTOR_THROTTLE_API = _throttle_rate("PREDICTOR_THROTTLE_API", "300/min")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so an anonymous call to a protected endpoint gets a 401 with WWW-Authenticate.
        "predictor.accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Safe default for any view that forgets to say: staff only. Public views opt out explicitly.
    "DEFAULT_PERMISSION_CLASSES": ["predictor.api.permissions.IsStaff"],
    "DEFAULT_PARSER_CLASSES": ["predictor.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "predictor.api.negotiation.JSONOnlyNegotiation",
    "DEFAULT_THROTTLE_CLASSES": ["predictor.api.throttling.SettingsRateThrottle"],
    "EXCEPTION_HANDLER": "predictor.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Proxies in front of the app (1 behind a load balancer): the client IP throttling counts by.
    # 0 means "use the socket's address"; never None, which would trust a client-sent X-Forwarded-For.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0, minimum=0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "BMI → diabetes progression API",
    "DESCRIPTION": (
        "Predicts diabetes disease progression one year after baseline from body mass index (kg/m²), "
        "and manages the model versions that make the predictions. Errors share one body: "
        '`{"error": {"status", "code", "message", "fields"?}}`. The predictions and the model list are '
        "open (no lock) unless the deployment sets PREDICTOR_PREDICTIONS_REQUIRE_AUTH; then, and for every "
        "other operation, send `Authorization: Token <token>` (or use a signed-in session)."
    ),
    # The public group first: most readers come for a prediction.
    "TAGS": [
        {"name": "predictions", "description": "Predict progression from BMI: open to anyone by default."},
        {"name": "models", "description": "The model versions and their metrics."},
        {"name": "monitoring", "description": "Outcomes observed later, live quality and drift."},
        {"name": "management", "description": "Train, promote and roll back versions (operators)."},
    ],
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from our own static files (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Throttle counters live here, off the database. Per process; a shared cache (Redis) is not wired in.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "bmi-default",
    }
}

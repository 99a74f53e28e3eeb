"""The development server's log: every record printed once."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import logging
import django
django.setup()
logging.getLogger("django.request").warning("one warning, %s", "once")
logging.getLogger("predictor.web.views").warning("an app warning, %s", "once")
"""


def test_a_warning_is_printed_once_under_debug_as_runserver_runs():
    env = {**os.environ, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "bmiproject.settings"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stderr.count("one warning, once") == 1, result.stderr
    assert result.stderr.count("an app warning, once") == 1, result.stderr

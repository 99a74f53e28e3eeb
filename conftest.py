"""Root test configuration: environment defaults so a plain `pytest` works on a fresh clone.

Loaded before Django's settings. Real values (DATABASE_URL in CI) win over these defaults.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")

import pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # These tests sign in dozens of times; PBKDF2's deliberate cost (about 0.3 s a check here) is
    # not what they test, and the lockout works the same whatever the hasher.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

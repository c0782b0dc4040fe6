import pytest


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """Many users are made here; the default hasher's cost is a deliberate ~0.3 s each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

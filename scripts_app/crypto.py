"""Encryption at rest for secrets, with the key from the environment (SECRETS_ENCRYPTION_KEY)."""

from functools import cache

from cryptography.fernet import Fernet
from django.conf import settings


@cache
def _fernet():
    return Fernet(settings.SECRETS_ENCRYPTION_KEY.encode())


def encrypt(value: str) -> bytes:
    return _fernet().encrypt(value.encode())


def decrypt(token: bytes) -> str:
    return _fernet().decrypt(token).decode()

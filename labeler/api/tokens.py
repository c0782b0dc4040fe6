"""State changes of API tokens, one function each: create (the only time the secret is seen),
revoke, and look one up from an ``Authorization: Bearer`` value."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from .models import ApiToken

PREFIX = "lbl_"


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(
    user: AbstractBaseUser, name: str, *, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """A new token for `user`; returns the row and the token text (shown once, never stored)."""
    name = (name or "").strip()
    if not name:
        raise ValueError("A token needs a name (what it is for).")
    if len(name) > 100:
        raise ValueError("A token's name has at most 100 characters.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValueError("The expiry must be in the future.")
    lookup = secrets.token_hex(6)  # 12 hex characters: finds the row, proves nothing
    token = f"{PREFIX}{lookup}_{secrets.token_urlsafe(32)}"
    row = ApiToken.objects.create(
        user=user, name=name, prefix=lookup, digest=digest_of(token), expires_at=expires_at
    )
    return row, token


def revoke_token(token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def find_token(token: str) -> ApiToken | None:
    """The active token row for `token`, or None (unknown, wrong secret, revoked or expired)."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    lookup, _, secret = token[len(PREFIX):].partition("_")
    if not lookup or not secret:
        return None
    row = ApiToken.objects.select_related("user").filter(prefix=lookup).first()
    if row is None or not hmac.compare_digest(row.digest, digest_of(token)):
        return None
    if not row.active or not row.user.is_active:
        return None
    now = timezone.now()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)  # at most once a minute
    return row

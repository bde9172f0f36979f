"""Schemathesis hooks for scripts/schemathesis.sh.

Only rules that JSON Schema cannot state, all written in the document's
descriptions, are handled here, by dropping the generated cases that break
them; every other rule is in the document, and the run holds the service to it.

- A target URL under this deployment's own public base URL is refused
  (`GenerateLink.TargetUrlIsSelf`): the base is configuration
  (OFFNDAT_PUBLIC_BASE_URL), and Schemathesis learns it from `Location` headers.
- A target URL is at most 4096 characters also once normalised: a URL without
  a path gains a `/`.
- `expiresAt` must be in the future, which depends on the clock.
- Whole numbers are written without a fraction: `0.0` is refused where `0` is
  accepted, but JSON Schema's `integer` admits both.
"""

import os
from datetime import datetime, timezone
from urllib.parse import urlsplit

import schemathesis

OWN_HOST = (urlsplit(os.environ.get("OFFNDAT_PUBLIC_BASE_URL", "")).hostname or "").lower()
MAX_TARGET_CHARS = 4096


def _target_refused(target):
    try:
        parts = urlsplit(target.strip())
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    normalised_length = len(target.strip()) + (0 if parts.path else 1)
    return (OWN_HOST and host == OWN_HOST) or normalised_length > MAX_TARGET_CHARS


def _past(expires_at):
    try:
        at = datetime.fromisoformat(expires_at.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return False
    return at.tzinfo is not None and at <= datetime.now(timezone.utc)


def _has_fraction_form(values):
    return any(isinstance(value, float) for value in values)


def _body_breaks_a_rule(body):
    if not isinstance(body, dict):
        return False
    target = body.get("targetUrl")
    if isinstance(target, str) and _target_refused(target):
        return True
    expires_at = body.get("expiresAt")
    if isinstance(expires_at, str) and _past(expires_at):
        return True
    return _has_fraction_form(body.values())


# `filter_case` rather than `filter_body`: it applies in every phase, the
# coverage phase's boundary values included.
@schemathesis.hook
def filter_case(context, case):
    query = case.query if isinstance(case.query, dict) else {}
    return not (_body_breaks_a_rule(case.body) or _has_fraction_form(query.values()))

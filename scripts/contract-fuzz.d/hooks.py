"""Checks of scripts/contract-fuzz beyond Schemathesis' own (loaded with SCHEMATHESIS_HOOKS)."""

import schemathesis

# 422 problem types that depend on stored state or on relations between fields that JSON
# Schema cannot express; any other 422 to a schema-valid request means the document is not
# exact (a rule the server enforces is missing from the schema).
STATE_DEPENDENT_422 = {
    "insufficient-funds",
    # A hold's expires_at relative to now; a capture relative to its stored hold.
    "invalid-expiry",
    "capture-exceeds-hold",
    "currency-mismatch",
    "same-wallet",
    "amount-not-representable",
    "unknown-user",
    "idempotency-key-reuse",
}


@schemathesis.check
def schema_valid_requests_fail_only_on_state(ctx, response, case):
    """A schema-valid request answered 422 names a rule the schema cannot state."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    try:
        slug = str(response.json().get("type", "")).rsplit("/", 1)[-1]
    except Exception:  # noqa: BLE001 - a 422 without a problem body is a finding too
        slug = "<no problem body>"
    if slug not in STATE_DEPENDENT_422:
        raise AssertionError(
            f"a schema-valid request was refused with 422 {slug}: "
            "the document is missing a rule the server enforces"
        )
    return None

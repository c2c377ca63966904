"""What every service module shares for find / delete: a lookup that answers None for "not there", and a
delete that is measured (looked up again) rather than assumed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasks.aws import error_code, is_not_found

REMOVED = "removed"
ALREADY_GONE = "already gone"
FAILED = "failed"
_GONE_CODES = {"ResourceNotFound", "NoSuchBucket"}


def lookup(call: Callable[..., Any], **kwargs: Any) -> Any:
    """The call's response, or None when the resource does not exist."""
    try:
        return call(**kwargs)
    except Exception as err:
        if is_not_found(err) or error_code(err) in _GONE_CODES:
            return None
        raise


def delete_measured(call: Callable[[], Any], still_there: Callable[[], bool]) -> dict[str, Any]:
    """Delete, then look again: 'removed' only when the lookup no longer finds it."""
    if not still_there():
        return {"status": ALREADY_GONE, "measured": "not found before deletion"}
    try:
        call()
    except Exception as err:
        if not is_not_found(err) and error_code(err) != "ResourceNotFound":
            raise
    if still_there():
        return {"status": FAILED, "error": "still present after deletion"}
    return {"status": REMOVED, "measured": "not found after deletion"}

"""What every service module shares for find / delete: a lookup that answers None for "not there", and a
delete that is measured (looked up again) rather than assumed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config.model import MigrationConfig
from tasks.aws import error_code, is_not_found
from tasks.errors import CollisionError

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


def delete_measured(call: Callable[[], Any], find: Callable[[], Any]) -> dict[str, Any]:
    """Delete, then look again: 'removed' only when `find` (None or empty: not there) no longer finds it."""
    if not find():
        return {"status": ALREADY_GONE, "measured": "not found before deletion"}
    try:
        call()
    except Exception as err:
        if not is_not_found(err) and error_code(err) != "ResourceNotFound":
            raise
    if find():
        return {"status": FAILED, "error": "still present after deletion"}
    return {"status": REMOVED, "measured": "not found after deletion"}


def claim(cfg: MigrationConfig, tags: dict[str, str], what: str, fix: str) -> None:
    """Refuse to converge a resource that has our name but not our tags (someone else's: never adopted)."""
    if not cfg.owns(tags):
        raise CollisionError(
            f"{what} and is not tagged as part of migration batch {cfg.migration_batch!r} ({cfg.environment_suffix}); "
            f"{fix}"
        )

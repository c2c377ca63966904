"""Errors that mean 'the user must change something': printed as one line, exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment; its message is one line with the fix."""


class PreflightError(UserError):
    """A check before anything is created failed (credentials, missing source, ...)."""


class CollisionError(UserError):
    """A target name is taken by something this project does not own."""

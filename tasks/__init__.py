"""Prefect tasks, one step each, and the pure logic they share (kept apart from AWS calls)."""

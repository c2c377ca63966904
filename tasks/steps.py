"""The one retry/backoff/jitter/alert policy of the migration DAG, applied where each step is defined.

Every work function that is a step of a flow carries `@step(...)` in its own module (tasks/provision,
tasks/move, tasks/validate), as prefect-aws puts `@task` on its functions: the module attribute is the
Prefect task the flows submit, and `.fn` is the plain function tests and inline callers use. Partitioned
steps (S3 key ranges, DynamoDB scan segments) are separate task runs, never one per object or item.
tasks/validate/digest.py and lambda/ never import this module: they are zipped into the Lambda.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from config.settings import SETTINGS
from tasks import alerts

P = ParamSpec("P")
R = TypeVar("R")

# Copies in flight per S3 partition task; the flow runs a few partition tasks side by side.
S3_COPY_WORKERS = SETTINGS.s3_copy_workers


def step(
    name: str, retries: int = 3, delay: float = 2.0, run_name: str | None = None
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A task with exponential backoff + jitter between attempts and an SNS alert after the last one.

    botocore already retries throttling and 5xx inside each attempt (standard mode); these retries
    cover what outlasts that: a region hiccup, an eventually-consistent read, a killed worker.
    """

    def wrap(fn: Callable[P, R]) -> Task[P, R]:
        return task(
            name=name,
            task_run_name=run_name,
            retries=retries,
            retry_delay_seconds=exponential_backoff(backoff_factor=delay),
            retry_jitter_factor=0.5,
            cache_policy=NO_CACHE,
            on_failure=[alerts.on_task_failure],
        )(fn)

    return wrap

"""The pipeline's flows. Importing any of them first (`python -m flows.migrate` imports this package before the
module) sets the Prefect defaults the project needs, before Prefect is imported, and reads the settings: a bad
REGION_MIGRATION_* variable is one line each and exit 2, not a traceback."""

import sys

from config.model import ConfigError
from config.options import EXIT_BAD_INPUT, quiet_prefect_defaults

quiet_prefect_defaults()

try:
    import config.settings  # noqa: F401
except ConfigError as bad_setting:
    for problem in bad_setting.problems:
        print(f"error: {problem}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT) from None

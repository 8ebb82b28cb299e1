"""The background-sync schedules, in one place for `prefect.yaml` and `flows.serve`.

| deployment | what | default | environment |
|---|---|---|---|
| `sync-all-vendors/nightly` | incremental sync of every vendor | `0 2 * * *` | `LEDGER_NIGHTLY_CRON` |
| `sync-all-vendors/weekly-full` | full reconcile (finds hard deletes) | `0 3 * * 0` | `LEDGER_WEEKLY_CRON` |

Both in `LEDGER_SCHEDULE_TIMEZONE` (an IANA name, default `UTC`).
`LEDGER_SCHEDULES_ACTIVE=false` creates them paused (tests, a staging copy).

Why a deploy step and not `{{ $LEDGER_NIGHTLY_CRON }}` in prefect.yaml: Prefect 3.9's
`prefect deploy` has no default for an env-var placeholder. Unset, the placeholder
stays literal, then becomes "" when the schedule is built, and the deploy stops with
"Unknown schedule type". `prefect.yaml` calls `deploy_values` below as a build step
(`{{ ledger.nightly_cron }}` etc.) so a fresh machine with nothing set gets the
defaults, and an operator changes them with the environment, offline.
"""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

NIGHTLY_CRON = "0 2 * * *"
WEEKLY_CRON = "0 3 * * 0"
TIMEZONE = "UTC"
PROJECT_DIR = Path(__file__).resolve().parent.parent


class ScheduleError(ValueError):
    pass


def _cron(variable: str, default: str) -> str:
    from prefect.client.schemas.schedules import CronSchedule

    value = (os.environ.get(variable) or "").strip() or default
    try:
        CronSchedule(cron=value)
    except ValueError:  # pydantic's ValidationError is one
        raise ScheduleError(f"{variable}={value!r} is not a valid cron expression (e.g. {default!r})") from None
    return value


def schedule_timezone() -> str:
    value = (os.environ.get("LEDGER_SCHEDULE_TIMEZONE") or "").strip() or TIMEZONE
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"LEDGER_SCHEDULE_TIMEZONE={value!r} is not an IANA time zone (e.g. 'Asia/Kolkata')") \
            from None
    return value


def nightly_cron() -> str:
    return _cron("LEDGER_NIGHTLY_CRON", NIGHTLY_CRON)


def weekly_cron() -> str:
    return _cron("LEDGER_WEEKLY_CRON", WEEKLY_CRON)


def schedules_active() -> bool:
    return (os.environ.get("LEDGER_SCHEDULES_ACTIVE") or "true").strip().lower() not in ("0", "false", "no", "off")


def deploy_values() -> dict[str, object]:
    """A `prefect.yaml` build step (id `ledger`): the values its deployments template in."""
    return {
        "nightly_cron": nightly_cron(),
        "weekly_cron": weekly_cron(),
        "timezone": schedule_timezone(),
        "active": schedules_active(),
        # Where workers find the code (a set_working_directory pull step): the checkout
        # `prefect deploy` runs in, unless LEDGER_PROJECT_DIR names the workers' checkout.
        "project_dir": (os.environ.get("LEDGER_PROJECT_DIR") or "").strip() or str(Path.cwd().resolve()),
    }

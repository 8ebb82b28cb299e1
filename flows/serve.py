"""Serve Ledger Sync's deployments: `sync-vendor-ledger/on-demand`, the two scheduled
background syncs, `sync-all-vendors/nightly` and `sync-all-vendors/weekly-full`, and the
continuous sync `watch-sources/continuous` (started by hand).

A long-running process (started by `ledger-sync up`, or on its own with
`python -m flows.serve`) that polls the Prefect API for runs of these deployments
and executes each in a subprocess. The API triggers runs with
`run_deployment("sync-vendor-ledger/on-demand", ...)`; the Prefect scheduler creates
the scheduled ones (visible with their schedules in the Prefect UI). Needs `PREFECT_API_URL`.

Schedules come from `flows.schedules` (LEDGER_NIGHTLY_CRON, LEDGER_WEEKLY_CRON,
LEDGER_SCHEDULE_TIMEZONE, LEDGER_SCHEDULES_ACTIVE), the same values `prefect.yaml` uses.

The same deployments can instead run on a process work pool: see `prefect.yaml`
(`prefect --no-prompt deploy --all` + `prefect worker start --pool ledger-sync`).
"""

from __future__ import annotations

import os

from flows.deployments import DEPLOYMENT_NAME, PRODUCT_TAG, SCHEDULED

# Read by Prefect when it is imported: pick a new run up within about a second.
os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "1")
# The flow runs' own log lines at INFO (each step's summary), in the Prefect UI and this process's log,
# even when Prefect's other logging is kept to warnings (`ledger-sync up` does).
for _runs in ("FLOW_RUNS", "TASK_RUNS"):
    os.environ.setdefault(f"PREFECT_LOGGING_LOGGERS_PREFECT_{_runs}_LEVEL", "INFO")


def build_deployment():
    from flows.sync_vendor import sync_vendor_ledger

    return sync_vendor_ledger.to_deployment(
        name=DEPLOYMENT_NAME,
        description="Sync one vendor's invoices, payments and expenses into its ledger, on demand (API, UI).",
        tags=[PRODUCT_TAG],
    )


def build_scheduled_deployments() -> list:
    """`nightly` (incremental) and `weekly-full` (full reconcile) of every vendor, as in prefect.yaml."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    from flows import schedules
    from flows.nightly import sync_all_vendors

    timezone, active = schedules.schedule_timezone(), schedules.schedules_active()
    crons = {"nightly": schedules.nightly_cron(), "weekly-full": schedules.weekly_cron()}
    descriptions = {
        "nightly": "Nightly incremental sync of every vendor (what changed since its last successful sync).",
        "weekly-full": "Weekly full reconcile of every vendor (re-reads everything, reverses hard-deleted documents).",
    }
    return [
        sync_all_vendors.to_deployment(
            name=name, description=descriptions[name], tags=[PRODUCT_TAG, "scheduled"],
            parameters={"full": full}, schedules=[Cron(crons[name], timezone=timezone, active=active)],
            # One run of each at a time: an overlapping or piled-up run is cancelled, not queued.
            concurrency_limit=ConcurrencyLimitConfig(limit=1,
                                                     collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW))
        for name, full in SCHEDULED.items()
    ]


def build_watcher_deployment():
    """`watch-sources/continuous`, as in prefect.yaml: started by hand, one run at a time."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    from flows.watch import watch_sources

    return watch_sources.to_deployment(
        name="continuous", description="Follow the source collections' change streams and post every change "
                                       "within seconds.", tags=[PRODUCT_TAG, "continuous"],
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW))


def main() -> None:
    from prefect import serve

    from flows.logs import use_log_format

    use_log_format()

    if not os.environ.get("PREFECT_API_URL"):
        raise SystemExit("flows.serve needs PREFECT_API_URL (the Prefect server to take runs from)")
    limit = int(os.environ.get("LEDGER_SERVE_LIMIT", "8"))
    # Not paused on shutdown: a run triggered while this process restarts waits and is picked up after.
    serve(build_deployment(), *build_scheduled_deployments(), build_watcher_deployment(), limit=limit,
          print_starting_message=False, pause_on_shutdown=False)


if __name__ == "__main__":
    main()

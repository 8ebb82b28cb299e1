"""The background-sync schedules: defaults, environment overrides, refusals; the same values in
`prefect.yaml` (through its build step) and in the deployments `flows.serve` serves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows import schedules
from flows.serve import build_scheduled_deployments

PREFECT_YAML = Path(__file__).resolve().parent.parent / "prefect.yaml"
VARIABLES = ("LEDGER_NIGHTLY_CRON", "LEDGER_WEEKLY_CRON", "LEDGER_SCHEDULE_TIMEZONE", "LEDGER_SCHEDULES_ACTIVE",
             "LEDGER_PROJECT_DIR")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def test_defaults_on_a_fresh_machine(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert schedules.deploy_values() == {"nightly_cron": "0 2 * * *", "weekly_cron": "0 3 * * 0", "timezone": "UTC",
                                         "active": True, "project_dir": str(tmp_path.resolve())}


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("LEDGER_NIGHTLY_CRON", "30 1 * * 1-5")
    monkeypatch.setenv("LEDGER_WEEKLY_CRON", " ")  # blank: the default
    monkeypatch.setenv("LEDGER_SCHEDULE_TIMEZONE", "Asia/Kolkata")
    monkeypatch.setenv("LEDGER_SCHEDULES_ACTIVE", "false")
    monkeypatch.setenv("LEDGER_PROJECT_DIR", "/srv/ledger-sync")
    assert schedules.deploy_values() == {"nightly_cron": "30 1 * * 1-5", "weekly_cron": "0 3 * * 0",
                                         "timezone": "Asia/Kolkata", "active": False,
                                         "project_dir": "/srv/ledger-sync"}


@pytest.mark.parametrize("variable, value", [("LEDGER_NIGHTLY_CRON", "every night"),
                                             ("LEDGER_WEEKLY_CRON", "0 3 * *"),
                                             ("LEDGER_SCHEDULE_TIMEZONE", "Mars/Olympus")])
def test_a_bad_value_is_refused_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(schedules.ScheduleError, match=variable):
        schedules.deploy_values()


def test_served_deployments_carry_the_schedules(monkeypatch):
    monkeypatch.setenv("LEDGER_NIGHTLY_CRON", "15 1 * * *")
    monkeypatch.setenv("LEDGER_SCHEDULE_TIMEZONE", "Asia/Kolkata")
    deployments = {d.name: d for d in build_scheduled_deployments()}
    assert set(deployments) == {"nightly", "weekly-full"}
    for name, cron, full in (("nightly", "15 1 * * *", False), ("weekly-full", "0 3 * * 0", True)):
        deployment = deployments[name]
        assert deployment.parameters == {"full": full}
        assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in deployment.schedules] == [
            (cron, "Asia/Kolkata", True)]
        assert deployment.concurrency_limit == 1
        assert deployment.concurrency_options.collision_strategy.value == "CANCEL_NEW"


def test_prefect_yaml_takes_its_schedules_from_the_build_step():
    config = yaml.safe_load(PREFECT_YAML.read_text())
    assert config["build"] == [{"flows.schedules.deploy_values": {"id": "ledger"}}]
    assert config["pull"] == [{"prefect.deployments.steps.set_working_directory": {
        "directory": "{{ ledger.project_dir }}"}}]
    deployments = {d["name"]: d for d in config["deployments"]}
    assert deployments["nightly"]["schedules"] == [
        {"cron": "{{ ledger.nightly_cron }}", "timezone": "{{ ledger.timezone }}", "active": "{{ ledger.active }}"}]
    assert deployments["weekly-full"]["schedules"][0]["cron"] == "{{ ledger.weekly_cron }}"
    assert deployments["nightly"]["parameters"] == {"full": False}
    assert deployments["weekly-full"]["parameters"] == {"full": True}
    scheduled = {d["entrypoint"] for d in deployments.values() if d.get("schedules")}
    assert scheduled == {"flows/nightly.py:sync_all_vendors"}
    assert deployments["continuous"]["entrypoint"] == "flows/watch.py:watch_sources"  # started by hand
    assert "schedules" not in deployments["continuous"]

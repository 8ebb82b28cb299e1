"""The supervisor's restart policy, on a fake clock: 1 s doubling to 30 s, back to 1 s after a stable run."""

from __future__ import annotations

from cli.stack import Supervisor


class FakeChild:
    def __init__(self, name: str):
        self.name, self.alive, self.returncode, self.pid, self.log_path = name, True, None, 100, f"/logs/{name}.log"
        self.keep_group_on_crash = False
        self.restarts = 0

    def healthy(self) -> bool:
        return self.alive

    def die(self, code: int = -9) -> None:
        self.alive, self.returncode = False, code

    def restart(self) -> None:
        self.restarts += 1
        self.pid += 1
        self.alive, self.returncode = True, None


def test_restart_delays_double_up_to_the_cap_and_reset_after_a_stable_run():
    now = [0.0]
    lines: list[str] = []
    child, other = FakeChild("api"), FakeChild("database")
    deaths: list[str] = []
    supervisor = Supervisor([child, other], lines.append, initial=1, maximum=30, stable_seconds=60,
                            clock=lambda: now[0], on_death=lambda c: deaths.append(c.name))

    def delay_after_death() -> float:
        """Kill the child right away (a crash loop), tick until it is restarted; the delay it waited."""
        child.die()
        supervisor.tick()
        died_at, before = now[0], child.restarts
        while child.restarts == before:
            now[0] += 0.5
            supervisor.tick()
        return now[0] - died_at

    assert [delay_after_death() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert other.restarts == 0 and deaths == ["api"] * 7  # the others are left alone
    assert "api exited with code -9 (SIGKILL); log: /logs/api.log. Restarting it in 16s" in "\n".join(lines)
    now[0] += 61  # it stayed up a minute: the next crash starts from 1 s again
    supervisor.tick()
    assert delay_after_death() == 1


def test_a_restart_that_fails_is_retried_with_backoff():
    now = [0.0]
    lines: list[str] = []
    child = FakeChild("prefect-server")
    failures = [OSError("port 4200 is in use")]

    def restart() -> None:
        if failures:
            raise failures.pop()
        FakeChild.restart(child)

    child.restart = restart
    supervisor = Supervisor([child], lines.append, initial=1, maximum=30, clock=lambda: now[0])
    child.die(1)
    for _ in range(20):
        now[0] += 0.5
        supervisor.tick()
    assert child.alive and child.restarts == 1
    text = "\n".join(lines)
    assert "prefect-server could not be restarted: port 4200 is in use" in text
    assert "prefect-server is back" in text

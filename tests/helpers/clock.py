"""A clock for code that takes one (`clock=`): time moves only when a test moves it."""

from __future__ import annotations


class FakeClock:
    """Time moves only through sleep() or by setting `now`: waits cost no real time."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

"""A monotonic clock the test moves by hand: pass ``clock=lambda: fake.now``."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

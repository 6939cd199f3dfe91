"""The time accumulator: exclusive nesting, forward hooks on a real module, proxies, the report."""
from __future__ import annotations

import threading

import pytest
import torch

from xstilts.runtime.timing import CATEGORIES, Timings


class Clock:
    """A clock the test advances by hand, so every figure below is exact."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_nested_categories_are_exclusive_and_other_completes_the_wall_time():
    clock = Clock()
    t = Timings(clock)
    with t.phase("tracking"):
        clock.now += 1.0
        with t.phase("data"):
            clock.now += 2.0
            with t.phase("train_steps"):
                clock.now += 4.0
            clock.now += 0.5
        clock.now += 0.25
    clock.now += 8.0  # outside any category
    b = t.breakdown()
    assert b["tracking"] == 1.25 and b["data"] == 2.5 and b["train_steps"] == 4.0
    assert b["other"] == 8.0 and sum(b.values()) == pytest.approx(t.wall()) == pytest.approx(15.75)
    m = t.metrics()
    assert m["time.overhead.share"] == pytest.approx(1 - 4.0 / 15.75)
    assert m["time.train_steps.share"] == pytest.approx(4.0 / 15.75)
    assert t.counts["data"] == 1 and set(t.to_dict()["seconds"]) == set(CATEGORIES)


def test_an_exception_still_closes_its_category():
    clock = Clock()
    t = Timings(clock)
    with pytest.raises(KeyError), t.phase("model_load"):
        clock.now += 3.0
        raise KeyError("boom")
    clock.now += 1.0
    assert t.breakdown()["model_load"] == 3.0 and t.breakdown()["other"] == 1.0


def test_unknown_category_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="train_steps"):
        with Timings().phase("steps"):
            pass


def test_forward_hooks_charge_forward_passes_of_nested_modules_once():
    """A model and its own submodule hooked: nested forwards nest, time is not counted twice."""
    clock = Clock()
    t = Timings(clock)

    class Slow(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = torch.nn.Linear(2, 2)

        def forward(self, x):
            clock.now += 1.0
            y = self.inner(x)
            clock.now += 1.0
            return y

    model = Slow()
    model.inner.register_forward_hook(lambda *_: setattr(clock, "now", clock.now + 0.5))
    with t.phase("data"), t.forward_hooks([model, model.inner, None]):
        clock.now += 10.0
        model(torch.ones(1, 2))
        model(torch.ones(1, 2))
    assert t.breakdown()["eval_forward"] == pytest.approx(2 * 2.5)
    assert t.breakdown()["data"] == pytest.approx(10.0)
    assert not model._forward_hooks and not model._forward_pre_hooks  # removed on exit
    model(torch.ones(1, 2))
    assert t.breakdown()["eval_forward"] == pytest.approx(5.0)


def test_forward_that_raises_is_unwound_when_the_hooks_close():
    clock = Clock()
    t = Timings(clock)

    class Broken(torch.nn.Module):
        def forward(self, x):
            clock.now += 2.0
            raise RuntimeError("bad batch")

    m = Broken()
    with t.phase("data"), pytest.raises(RuntimeError), t.forward_hooks([m]):
        m(torch.ones(1))
    clock.now += 1.0
    with t.phase("tracking"):
        clock.now += 1.0
    assert t.breakdown()["eval_forward"] == 2.0 and t.breakdown()["tracking"] == 1.0
    assert t.breakdown()["other"] == 1.0


def test_a_wrapped_object_charges_its_method_calls_and_passes_attributes():
    clock = Clock()
    t = Timings(clock)

    class Client:
        uri = "sqlite:///x.db"

        def log(self, n):
            clock.now += n
            return n * 2

    client = t.wrap(Client(), "tracking")
    assert client.uri == "sqlite:///x.db" and client.log(3) == 6
    assert t.breakdown()["tracking"] == 3.0


def test_other_threads_are_not_timed():
    clock = Clock()
    t = Timings(clock)

    def work():
        with t.phase("tracking"):
            clock.now += 5.0

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert t.breakdown()["tracking"] == 0.0 and t.breakdown()["other"] == 5.0


def test_table_lists_every_category_and_the_overhead():
    clock = Clock()
    t = Timings(clock)
    with t.phase("train_steps"):
        clock.now += 6.0
    with t.phase("eval_forward"):
        clock.now += 2.0
    with t.phase("tracking"):
        clock.now += 2.0
    table = t.table()
    for meaning in CATEGORIES.values():
        assert meaning in table
    assert "| **all but training steps and evaluation forward passes** | 2.0 | 20.0 % |" in table

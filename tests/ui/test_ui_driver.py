"""The TUI's terminal driver: its input thread sleeps while nobody types, yet keys, a lone
ESC (the parser's timeout) and stopping are handled as promptly as Textual's own."""
from __future__ import annotations

import asyncio
import os
import pty
import selectors
import signal
import threading
import time
import tty

import pytest
from textual import events
from textual._xterm_parser import XTermParser

from keck_tui.ui import driver as drv


class _Recording(drv.QuietLinuxDriver):
    def process_message(self, message) -> None:  # what the app would be sent
        self.got.append(message)


@pytest.fixture
def running(monkeypatch):
    """A QuietLinuxDriver reading a pty in its input thread; counts its waits."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTSTP, signal.SIGCONT)}
    waits: list[float | None] = []

    class Counting(selectors.SelectSelector):
        def select(self, timeout=None):
            waits.append(timeout)
            return super().select(timeout)

    monkeypatch.setattr(selectors, "SelectSelector", Counting)

    async def make() -> _Recording:
        return _Recording(None)

    d = asyncio.run(make())
    master, slave = pty.openpty()
    tty.setraw(slave)  # as the app's start does: bytes, not lines
    d.got, d.fileno = [], slave
    thread = threading.Thread(target=d.run_input_thread, daemon=True)
    thread.start()
    yield d, master, waits, thread
    d.exit_event.set()
    thread.join(2)
    os.close(master)
    os.close(slave)
    for s, h in saved.items():
        signal.signal(s, h)


def _wait_for(pred, limit: float = 2.0) -> float:
    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < limit, "timed out"
        time.sleep(0.005)
    return time.monotonic() - t0


def _keys(d) -> list[str]:
    return [m.key for m in d.got if isinstance(m, events.Key)]


def test_idle_input_thread_does_not_poll(running):
    d, _master, waits, thread = running
    time.sleep(0.6)  # Textual's own thread would have woken 6 times
    assert thread.is_alive()
    assert waits == [None], waits


def test_keys_arrive_and_a_lone_escape_times_out(running):
    d, master, waits, _thread = running
    os.write(master, b"a")
    _wait_for(lambda: _keys(d) == ["a"])
    os.write(master, b"\x1b")  # could start a sequence: the parser waits its timeout, then says escape
    took = _wait_for(lambda: _keys(d) == ["a", "escape"])
    assert took < 1.0
    assert any(w is not None and 0 < w <= 1.0 for w in waits), waits  # slept only until the deadline
    time.sleep(0.3)
    n = len(waits)
    time.sleep(0.3)
    assert len(waits) == n  # idle again: no polling


def test_stop_wakes_the_sleeping_thread_at_once(running):
    d, _master, _waits, thread = running
    time.sleep(0.1)
    t0 = time.monotonic()
    d.exit_event.set()
    thread.join(1.0)
    assert not thread.is_alive() and time.monotonic() - t0 < 0.3
    assert d.exit_event.wake_fd == -1  # the thread's pipe went with it
    d.exit_event.set()  # no thread: sets, writes nowhere
    assert d.exit_event.is_set()


def test_a_new_input_thread_after_suspend_works(running):
    # Textual on SIGTSTP: exit_event.set(), join, clear() (disable_input), then close();
    # on SIGCONT a new input thread.
    d, master, waits, thread = running
    d.exit_event.set()
    thread.join(1.0)
    d.exit_event.clear()
    d.close()
    again = threading.Thread(target=d.run_input_thread, daemon=True)
    again.start()
    try:
        os.write(master, b"b")
        _wait_for(lambda: _keys(d) == ["b"])
        time.sleep(0.3)
        assert waits.count(None) >= 2  # it sleeps again
    finally:
        d.exit_event.set()
        again.join(1.0)
    assert not again.is_alive()


def test_input_timeout_follows_the_parser():
    parser = XTermParser(False)
    assert drv.input_timeout(parser, time.monotonic()) is None
    parser._timeout_time = 10.0
    assert drv.input_timeout(parser, 9.75) == pytest.approx(0.25)
    assert drv.input_timeout(parser, 11.0) == 0.0
    assert drv.input_timeout(object(), 0.0) == drv.POLL_S  # a parser that hides it: Textual's period


def test_the_app_uses_it_on_linux():
    from textual.drivers.linux_driver import LinuxDriver

    from keck_tui.ui.app import KeckApp

    assert issubclass(drv.QuietLinuxDriver, LinuxDriver)
    assert KeckApp.get_driver_class.__qualname__ == "KeckApp.get_driver_class"

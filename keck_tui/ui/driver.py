"""Textual's Linux driver, with an input thread that sleeps while nobody types.

Textual's input thread wakes ten times a second (``select`` with a 0.1 s timeout) to
notice that it should stop and to time out a half-received escape sequence. For a
monitor left open all day that is a tenth of its idle CPU (measured: 1.7 of 11.3 ms
per second of the TUI at a 1 s refresh). This driver waits instead until input
arrives, until the parser's own timeout (a lone ESC, an unfinished mouse report) is
due, or until it is told to stop — ``exit_event.set()`` also writes to a pipe the
thread waits on, so stopping (and suspending: Textual ends the thread on SIGTSTP and
starts a new one on SIGCONT) is as prompt as before.

Everything else is Textual's: reading, decoding and feeding the parser, and how
events are dispatched (the loop below follows ``LinuxDriver.run_input_thread`` of
Textual 8). Where the parser does not expose its timeout, the thread polls every
0.1 s as Textual does.
"""
from __future__ import annotations

import os
import selectors
import time
from codecs import getincrementaldecoder
from threading import Event, Lock

from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver

POLL_S = 0.1  # Textual's own period, where the parser's deadline is unknown


class _WakingEvent(Event):
    """An Event whose ``set()`` also makes a byte readable on a pipe (``wake_fd``) that the
    input thread waits on. The pipe lives as long as one input thread (``open()`` …
    ``close()``): Textual stops and starts the thread on suspend and resume."""

    def __init__(self) -> None:
        super().__init__()
        self._fds_lock = Lock()  # set() on the app's thread, close() on the input thread
        self.wake_fd = self._wake_w = -1

    def open(self) -> int:
        with self._fds_lock:
            if self.wake_fd < 0:
                self.wake_fd, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            return self.wake_fd

    def set(self) -> None:
        super().set()
        with self._fds_lock:
            if self._wake_w >= 0:
                try:
                    os.write(self._wake_w, b"x")
                except OSError:  # full: the reader is awake already
                    pass

    def drain(self) -> None:
        """Empty the pipe (after waking)."""
        try:
            while self.wake_fd >= 0 and os.read(self.wake_fd, 4096):
                pass
        except OSError:  # BlockingIOError: empty
            pass

    def close(self) -> None:
        """Close the pipe; ``set()`` then only sets (no write to a reused descriptor)."""
        with self._fds_lock:
            fds, self.wake_fd, self._wake_w = (self.wake_fd, self._wake_w), -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)


def input_timeout(parser: object, now: float) -> float | None:
    """How long the input thread may sleep: until the parser's pending timeout, forever
    (None) when nothing is pending, Textual's poll period when the parser hides it."""
    if not hasattr(parser, "_timeout_time"):
        return POLL_S
    due = getattr(parser, "_timeout_time")
    if due is None:
        return None
    return max(0.0, float(due) - now)


class QuietLinuxDriver(LinuxDriver):
    """``LinuxDriver`` whose input thread blocks until there is something to do."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.exit_event: _WakingEvent = _WakingEvent()

    def run_input_thread(self) -> None:
        """Wait for input (or the parser's timeout, or the stop signal) and dispatch events."""
        selector = selectors.SelectSelector()
        fileno = self.fileno
        selector.register(fileno, selectors.EVENT_READ)
        selector.register(self.exit_event.open(), selectors.EVENT_READ)
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode

        def dispatch(events: list, final: bool = False) -> bool:
            """Feed what the terminal sent; False when it has closed."""
            ready = [key for key, mask in events if key.fd == fileno and mask & selectors.EVENT_READ]
            for key in ready:
                data = decode(os.read(fileno, 1024 * 4), final=final)
                if not data:
                    return False
                for event in parser.feed(data):
                    self.process_message(event)
            for event in parser.tick():
                self.process_message(event)
            return True

        try:
            while not self.exit_event.is_set():
                events = selector.select(input_timeout(parser, time.monotonic()))
                self.exit_event.drain()
                if not dispatch(events):
                    break
            selector.unregister(fileno)
            dispatch(selector.select(POLL_S), final=True)
        finally:
            selector.close()
            self.exit_event.close()
            try:
                for _event in parser.feed(""):
                    pass
            except Exception:  # EOFError / ParseError of an unfinished sequence at the end
                pass

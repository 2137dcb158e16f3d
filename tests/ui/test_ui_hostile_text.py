"""Names from outside in the TUI (issue 12): Rich markup shows as written, escapes never reach
the terminal, and notifications quoting a peer are plain text."""
from __future__ import annotations

from dataclasses import replace

import fake_fleet as ff
from screen_text import screen_text
from ui_helpers import SETTINGS, RecordingFeed
from keck_tui.model import Row, SourceStatus
from keck_tui.ui.app import KeckApp

SIZE = (160, 40)
MARKUP = "[bold red]x[/bold red]"
LINK = "[link=https://evil.example]click[/link]"
ESCAPE = "\x1b]0;pwned\x07\x1b[2Jwipe"


def _hostile_snapshot(clock):
    snap = ff.series(1, clock)[-1]
    node = snap.root
    pod = Row(level="pod", id="pod-evil", name=MARKUP, watts=1.0, watts_lo=0.5, watts_hi=1.5,
              namespace=LINK, children=(
                  Row(level="process", id="666", name=ESCAPE, cmd=f"sh -c '{ESCAPE}' {MARKUP}", pid=666,
                      watts=1.0, watts_lo=0.5, watts_hi=1.5),))
    node = replace(node, children=(pod, *node.children), watts=node.watts + 1.0, watts_lo=node.watts_lo + 0.5,
                   watts_hi=node.watts_hi + 1.5)
    sources = (*snap.sources, SourceStatus("redfish", "error", f"HTTP 500: {MARKUP} {ESCAPE}"))
    return replace(snap, root=node, sources=sources, host=f"{MARKUP}host")


class _ErrorFeed(RecordingFeed):
    def last_error(self) -> str | None:
        return f"agent said {LINK}{ESCAPE}"

    def request_subtree(self, path) -> None:  # what a remote feed does when a row is expanded
        raise RuntimeError(f"HTTP 502 from {MARKUP}{ESCAPE}")


async def test_markup_in_names_shows_literally_and_escapes_never_reach_the_screen(clock) -> None:
    feed = _ErrorFeed([_hostile_snapshot(clock)])
    app = KeckApp(feed, settings=SETTINGS, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("down")
        await pilot.pause()
        text = screen_text(app)
        assert MARKUP in text  # a pod named "[bold red]x[/bold red]" is shown as that name
        assert "\x1b" not in text and "\x07" not in text
        assert "wipe" in text  # the printable rest of the process name is there
        assert f"agent said {LINK}" in text  # the feed's error, in the header, as written
        await pilot.press("d")  # the sources screen quotes the BMC's error
        await pilot.pause()
        text = screen_text(app)
        assert f"HTTP 500: {MARKUP}" in text and "\x1b" not in text
        await pilot.press("escape")
        await pilot.pause()
        app.view.take_pending_subtrees = lambda: [("node-7", "pod-evil")]
        app._request_subtrees()  # the feed raises with markup and escapes in its message
        await pilot.pause()
        shown = [n.message for n in app._notifications]
        assert any(f"HTTP 502 from {MARKUP}" in m for m in shown), shown
        assert all("\x1b" not in m and not n.markup for m, n in zip(shown, app._notifications))

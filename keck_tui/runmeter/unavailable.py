"""The one error of the trackers (its own module: the eBPF tracker and the chooser both raise it)."""
from __future__ import annotations


class TrackingUnavailable(Exception):
    """This tracking method cannot be used here (the message says why)."""

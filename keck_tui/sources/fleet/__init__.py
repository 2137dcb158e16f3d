"""Fleets: the fleet file (``file``), merging sources into one fleet → cluster → node
snapshot (``merge``), and the feed that polls them (``feed``)."""
from keck_tui.sources.fleet.feed import RemoteFeed, poll_once
from keck_tui.sources.fleet.file import DEFAULT_TIMEOUT_S, FleetConfig, FleetError, load_fleet
from keck_tui.sources.fleet.merge import FLEET_ID, ClusterSource, Fleet

__all__ = ["DEFAULT_TIMEOUT_S", "FLEET_ID", "ClusterSource", "Fleet", "FleetConfig", "FleetError", "RemoteFeed",
           "load_fleet", "poll_once"]

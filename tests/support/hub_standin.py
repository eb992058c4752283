"""The local Hub endpoint the tests use is the dry run's own: one implementation."""

from leviathan_tui.dryrun.hub_server import HubFile, HubRepo, HubStandIn, Request

__all__ = ["HubFile", "HubRepo", "HubStandIn", "Request"]

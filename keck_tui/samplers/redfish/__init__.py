"""Wall power from a Redfish BMC: the HTTP client (``client``), the schema reader
(``schema``, pure functions), the walk that plans what to read (``discovery``), and the
sampler the collector polls (``sampler``)."""
from keck_tui.samplers.redfish.client import RedfishClient, RedfishError
from keck_tui.samplers.redfish.sampler import RedfishConfig, RedfishSampler, read_credentials
from keck_tui.samplers.redfish.schema import DEFAULT_ACCURACY

__all__ = ["DEFAULT_ACCURACY", "RedfishClient", "RedfishConfig", "RedfishError", "RedfishSampler",
           "read_credentials"]

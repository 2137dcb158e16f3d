"""Finding and reading each chassis's power on a BMC: the walk of the Redfish tree.

Fetches through :class:`.client.RedfishClient` and asks :mod:`.schema` what each document
means. What to read is discovered once (a few dozen GETs) and then read with one GET per
planned document per poll.
"""
from __future__ import annotations

from typing import Any, Mapping

from keck_tui.samplers.redfish import schema
from keck_tui.samplers.redfish.client import RedfishClient, RedfishError
from keck_tui.samplers.redfish.schema import Plan


class Discovery:
    """Plans (which documents to read, how) for the top-level chassis of one BMC."""

    def __init__(self, client: RedfishClient) -> None:
        self.client = client
        self._accuracy_cache: dict[str, float | None] = {}

    async def plans(self) -> list[Plan]:
        """Discover every chassis's plan; RedfishError when the service has none to offer."""
        root = await self.client.get(self.client.root_path)
        if self.client.auth == "session" and not self.client.logged_in:
            await self.client.login(root)
        coll_uri = schema.link(root, "Chassis")
        if not coll_uri:
            raise RedfishError(f"{self.client.url}: the service root has no Chassis link")
        uris = schema.members(await self.client.get(coll_uri))
        if not uris:
            raise RedfishError(f"{self.client.url}: the Chassis collection is empty")
        chassis: dict[str, Mapping[str, Any]] = {}
        for uri in uris:
            doc = await self._try_get(uri)
            if doc is not None:
                chassis[schema.norm(uri)] = doc
        plans: dict[str, Plan] = {}
        for key, doc in chassis.items():
            plan = await self._plan_for(doc)
            if plan is not None:
                plans[key] = plan
        kinds = {key: str(doc.get("ChassisType") or "") for key, doc in chassis.items()}
        return schema.top_level(plans, schema.containment(chassis), kinds)

    async def read(self, plan: Plan) -> float | None:
        """The chassis's watts now (Σ over the plan's documents), or None when none has a reading."""
        values = []
        for uri in plan.uris:
            v = schema.reading(plan.method, await self.client.get(uri))
            if v is not None:
                values.append(v)
        return sum(values) if values else None

    async def _try_get(self, uri: str | None) -> Mapping[str, Any] | None:
        if not uri:
            return None
        try:
            return await self.client.get(uri)
        except RedfishError:
            return None

    async def _plan_for(self, doc: Mapping[str, Any]) -> Plan | None:
        """The first way this chassis offers to read its power (see :mod:`.schema`)."""
        cid, name = schema.chassis_id_name(doc)
        em_uri = schema.link(doc, "EnvironmentMetrics")
        em = await self._try_get(em_uri)
        if em is not None and em_uri and schema.reading(schema.ENVIRONMENT_METRICS, em) is not None:
            acc = await self._accuracy(em.get("PowerWatts"))
            return Plan(cid, name, schema.ENVIRONMENT_METRICS, [em_uri], acc)
        plan = await self._psu_plan(cid, name, doc)
        if plan is not None:
            return plan
        power_uri = schema.link(doc, "Power")
        power = await self._try_get(power_uri)
        if power is not None and power_uri and schema.reading(schema.POWER_CONTROL, power) is not None:
            return Plan(cid, name, schema.POWER_CONTROL, [power_uri], schema.DEFAULT_ACCURACY)
        sensors = await self._try_get(schema.link(doc, "Sensors"))
        if not sensors:
            return None
        found = []
        for uri in schema.members(sensors):
            s = await self._try_get(uri)
            if s is not None:
                found.append((uri, s))
        return schema.sensor_plan(cid, name, found)

    async def _psu_plan(self, cid: str, name: str, doc: Mapping[str, Any]) -> Plan | None:
        """Σ of the enabled power supplies' input power, when they report it."""
        subsystem = await self._try_get(schema.link(doc, "PowerSubsystem"))
        supplies = await self._try_get(schema.link(subsystem, "PowerSupplies")) if subsystem else None
        if not supplies:
            return None
        uris: list[str] = []
        accs: list[float] = []
        for psu_uri in schema.members(supplies):
            psu = await self._try_get(psu_uri)
            if not psu or not schema.enabled(psu):
                continue
            metrics_uri = schema.link(psu, "Metrics")
            metrics = await self._try_get(metrics_uri)
            if metrics and metrics_uri and schema.reading(schema.PSU_INPUT, metrics) is not None:
                uris.append(metrics_uri)
                accs.append(await self._accuracy(metrics.get("InputPowerWatts")))
        return Plan(cid, name, schema.PSU_INPUT, uris, max(accs)) if uris else None

    async def _accuracy(self, excerpt: Any) -> float:
        """Relative accuracy of a reading from the sensor its DataSourceUri names."""
        uri = schema.data_source(excerpt)
        if uri is None:
            return schema.DEFAULT_ACCURACY
        if uri not in self._accuracy_cache:
            sensor = await self._try_get(uri)
            self._accuracy_cache[uri] = schema.accuracy_of(sensor, None) if sensor is not None else None
        cached = self._accuracy_cache[uri]
        return schema.DEFAULT_ACCURACY if cached is None else cached

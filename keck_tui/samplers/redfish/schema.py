"""Reading the Redfish schema: pure functions from Redfish JSON documents to power readings.

Nothing here does I/O; :mod:`.discovery` fetches the documents and asks these functions
what they mean. Per chassis, the first of these that the BMC offers is its power:

1. ``EnvironmentMetrics.PowerWatts.Reading`` (Redfish 2020.4+),
2. Σ ``PowerSubsystem/PowerSupplies/<n>/Metrics.InputPowerWatts.Reading``,
3. legacy ``Power.PowerControl[].PowerConsumedWatts`` (the first entry with a value),
4. a ``Sensors`` member with ``ReadingType: Power`` and ``PhysicalContext: Chassis``
   (else Σ of the ``PowerSupply`` input-power sensors).

The accuracy is the ``Accuracy`` (percent) of the sensor a reading names in its
``DataSourceUri`` (or of the sensor itself); without one, ±5 % is assumed. A chassis
contained in another chassis that has a reading (``Links.ContainedBy`` /
``Links.Contains``) is not added: its power is inside its parent's; nor is a
card/component-type chassis when a node-type chassis has a reading.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from keck_tui.samplers.types import DOMAIN_NODE, PowerDomain

DEFAULT_ACCURACY = 0.05
#: ChassisType values of parts of a node (not added beside a node chassis that has a reading).
COMPONENT_CHASSIS_TYPES = frozenset({"Card", "Component", "Module", "Expansion", "IPBasedDrive",
                                     "StorageEnclosure", "Sidecar"})
ENVIRONMENT_METRICS = "EnvironmentMetrics.PowerWatts"
PSU_INPUT = "PowerSupplies.InputPowerWatts"
POWER_CONTROL = "Power.PowerControl"
SENSOR_CHASSIS = "Sensors.Chassis"
SENSOR_PSU_INPUT = "Sensors.PowerSupplyInput"


@dataclass
class Plan:
    """How to read one chassis's power: which documents, read how."""

    chassis_id: str
    name: str
    method: str  # ENVIRONMENT_METRICS, PSU_INPUT, POWER_CONTROL, SENSOR_CHASSIS or SENSOR_PSU_INPUT
    uris: list[str]
    accuracy: float
    contained_by: set[str] = field(default_factory=set)  # chassis @odata.ids above it


def norm(uri: str) -> str:
    """An @odata.id as a key: no fragment, no trailing slash."""
    return uri.split("#", 1)[0].rstrip("/")


def link(doc: Any, *keys: str) -> str | None:
    """The @odata.id at doc[k1][k2]..., or None."""
    cur = doc
    for k in keys:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(k)
    if isinstance(cur, Mapping) and isinstance(cur.get("@odata.id"), str):
        return cur["@odata.id"]
    return None


def members(collection: Any) -> list[str]:
    """The member @odata.ids of a collection document."""
    items = collection.get("Members") if isinstance(collection, Mapping) else None
    if not isinstance(items, list):
        return []
    return [m["@odata.id"] for m in items if isinstance(m, Mapping) and isinstance(m.get("@odata.id"), str)]


def number(value: Any) -> float | None:
    """A reading: a finite, non-negative number, else None (no reading)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        out = float(value)
    except OverflowError:  # a 400-digit integer
        return None
    return out if math.isfinite(out) and out >= 0 else None


def enabled(doc: Mapping[str, Any]) -> bool:
    status = doc.get("Status")
    state = status.get("State") if isinstance(status, Mapping) else None
    return state in (None, "Enabled", "StandbyOffline", "StandbySpare", "Deferring")


def accuracy_of(sensor: Mapping[str, Any], default: float | None = DEFAULT_ACCURACY) -> Any:
    """Redfish ``Accuracy`` is "the estimated percent error"; as a fraction."""
    acc = number(sensor.get("Accuracy"))
    return acc / 100.0 if acc is not None else default


def data_source(excerpt: Any) -> str | None:
    """The sensor a reading excerpt names in ``DataSourceUri``."""
    uri = excerpt.get("DataSourceUri") if isinstance(excerpt, Mapping) else None
    return uri if isinstance(uri, str) else None


def reading(method: str, doc: Mapping[str, Any]) -> float | None:
    """The watts one document holds for ``method``, or None."""
    if method == ENVIRONMENT_METRICS:
        pw = doc.get("PowerWatts")
        return number(pw.get("Reading")) if isinstance(pw, Mapping) else None
    if method == PSU_INPUT:
        ipw = doc.get("InputPowerWatts")
        return number(ipw.get("Reading")) if isinstance(ipw, Mapping) else None
    if method == POWER_CONTROL:
        controls = doc.get("PowerControl")
        for pc in controls if isinstance(controls, list) else ():
            if isinstance(pc, Mapping) and number(pc.get("PowerConsumedWatts")) is not None:
                return number(pc.get("PowerConsumedWatts"))
        return None
    if method.startswith("Sensors"):
        return number(doc.get("Reading")) if enabled(doc) else None
    return None


def chassis_id_name(doc: Mapping[str, Any]) -> tuple[str, str]:
    """A chassis's ``Id`` (else the last part of its @odata.id) and ``Name``."""
    cid = str(doc.get("Id") or norm(str(doc.get("@odata.id", "?"))).rsplit("/", 1)[-1])
    return cid, str(doc.get("Name") or cid)


def sensor_plan(cid: str, name: str, sensors: Iterable[tuple[str, Mapping[str, Any]]]) -> Plan | None:
    """From a chassis's sensors (uri, document): the chassis power sensor, else Σ PSU input sensors."""
    chassis_total: list[tuple[str, float]] = []
    psu_inputs: list[tuple[str, float]] = []
    for uri, s in sensors:
        if s.get("ReadingType") != "Power" or reading("Sensors", s) is None:
            continue
        if s.get("PhysicalContext") == "Chassis":
            chassis_total.append((uri, accuracy_of(s)))
        elif s.get("PhysicalContext") == "PowerSupply" and "input" in f"{s.get('Id', '')} {s.get('Name', '')}".lower():
            psu_inputs.append((uri, accuracy_of(s)))
    if chassis_total:
        uri, acc = chassis_total[0]
        return Plan(cid, name, SENSOR_CHASSIS, [uri], acc)
    if psu_inputs:
        return Plan(cid, name, SENSOR_PSU_INPUT, [u for u, _ in psu_inputs], max(a for _, a in psu_inputs))
    return None


def containment(chassis: Mapping[str, Mapping[str, Any]]) -> dict[str, set[str]]:
    """Chassis key → the keys of the chassis it sits in (from ContainedBy and Contains links)."""
    parents: dict[str, set[str]] = {k: set() for k in chassis}
    for key, doc in chassis.items():
        links = doc.get("Links") if isinstance(doc.get("Links"), Mapping) else {}
        up = link(links, "ContainedBy")
        if up:
            parents[key].add(norm(up))
        contains = links.get("Contains")
        for child in contains if isinstance(contains, list) else ():
            if isinstance(child, Mapping) and isinstance(child.get("@odata.id"), str):
                parents.setdefault(norm(child["@odata.id"]), set()).add(key)
    return parents


def top_level(plans: Mapping[str, Plan], parents: Mapping[str, set[str]],
              kinds: Mapping[str, str]) -> list[Plan]:
    """The plans whose power is not already inside another measured chassis's.

    ``kinds``: chassis key → ChassisType. Without links, a GPU/card chassis can look
    top-level: when a node-type chassis reports power, component-type ones are parts of it.
    """
    def has_measured_ancestor(key: str) -> bool:
        seen, todo = {key}, list(parents.get(key, ()))
        while todo:
            p = todo.pop()
            if p in seen:
                continue
            seen.add(p)
            if p in plans:
                return True
            todo.extend(parents.get(p, ()))
        return False

    top = {key: plan for key, plan in plans.items() if not has_measured_ancestor(key)}
    if any(kinds.get(key, "") not in COMPONENT_CHASSIS_TYPES for key in top):
        top = {key: plan for key, plan in top.items() if kinds.get(key, "") not in COMPONENT_CHASSIS_TYPES}
    return list(top.values())


def domain(plan: Plan, watts: float, interval_s: float) -> tuple[PowerDomain, dict[str, Any]]:
    """The power domain of one chassis's reading and its entry for the status's ``chassis`` list."""
    return (PowerDomain(name=f"chassis-{plan.chassis_id}", kind=DOMAIN_NODE, watts=watts, interval_s=interval_s,
                        accuracy=plan.accuracy, label=plan.name),
            {"id": plan.chassis_id, "name": plan.name, "watts": watts, "from": plan.method,
             "accuracy": plan.accuracy})

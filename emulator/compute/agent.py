"""The VM agent (the guest agent) as a VM's instance view reports it: Not Ready while the guest
boots, Ready once an emulated boot delay has passed since the VM last booted (its create, start or
restart ended), absent while the VM is deallocated. A fault rule of kind ``vm_agent_not_ready`` makes
a boot's agent never get ready.

Shapes: Ready as in the official example VirtualMachine_Get_InstanceView.json; Not Ready as Azure
reports an unresponsive agent (REST reference ``VirtualMachineAgentInstanceView``; Learn
"Troubleshooting checklist for Azure VM Agent": status Not Ready, "VM Agent is unresponsive."), no
official example shows it.
"""

from __future__ import annotations

from typing import Any

from ..core.clock import iso
from ..core.providers import Setting
from ..core.state import Resource

SETTING_NAME = "vm_agent"
FAULT_KIND = "vm_agent_not_ready"
DEFAULT_READY_AFTER_SECONDS = 3.0
AGENT_VERSION = "2.7.41491.1102"
# Power states without a guest: Azure shows no agent at all for a deallocated VM.
NO_GUEST = ("deallocated", "deallocating")


def merge_setting(current: dict[str, Any], value: Any) -> dict[str, Any]:
    """``{"ready_after_seconds": s}``: the emulated seconds from a VM's boot to its agent's Ready."""
    if not isinstance(value, dict):
        raise ValueError("settings.vm_agent: an object such as {\"ready_after_seconds\": 2}")
    unknown = set(value) - {"ready_after_seconds"}
    if unknown:
        raise ValueError(f"settings.vm_agent: unknown field(s) {sorted(unknown)} (known: ['ready_after_seconds'])")
    if "ready_after_seconds" in value:
        seconds = value["ready_after_seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError("settings.vm_agent.ready_after_seconds: a number of seconds >= 0")
        current["ready_after_seconds"] = float(seconds)
    return current


SETTING = Setting(SETTING_NAME, {"ready_after_seconds": DEFAULT_READY_AFTER_SECONDS}, merge_setting)


def boot(emulator: Any, vm: Resource, at: float, method: str, operation: str) -> None:
    """The VM's guest boots at emulated time ``at`` (the end of the create, start or restart that ran it).
    Whether this boot's agent ever gets ready is decided now, by the fault rules of kind
    ``vm_agent_not_ready`` matching the booting request's method and operation, with the VM's id as path."""
    vm.internal["bootedAt"] = at
    rule = emulator.faults.pick(method, vm.id, operation, (FAULT_KIND,))
    vm.internal["agentStuck"] = rule is not None


def ready_after(emulator: Any) -> float:
    return float(emulator.provider_settings[SETTING_NAME]["ready_after_seconds"])


def vm_agent(vm: Resource, power: str, now: float, delay: float) -> dict[str, Any] | None:
    """``instanceView.vmAgent``, or None when Azure shows none (the VM deallocated). A VM that never
    booted here (seeded, loaded from state) has been running long since: its agent is Ready."""
    if power in NO_GUEST:
        return None
    booted = vm.internal.get("bootedAt")
    ready_at = vm.created if booted is None else booted + delay
    if power == "running" and not vm.internal.get("agentStuck") and now >= ready_at:
        return {"vmAgentVersion": AGENT_VERSION, "statuses": [
            {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready",
             "message": "GuestAgent is running and accepting new configurations.", "time": iso(ready_at)}]}
    return {"vmAgentVersion": "Unknown", "statuses": [
        {"code": "ProvisioningState/Unavailable", "level": "Warning", "displayStatus": "Not Ready",
         "message": "VM Agent is unresponsive.", "time": iso(now)}]}

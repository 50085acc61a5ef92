"""The fleet local runs seed into the emulator (whose own default tags are neutral): vmkeeper's tags,
cycled over the VMs — a gold, a silver and a bronze VM, one without a policy tag (the default
policy), one opted out. Pass ``tag_sets=VMKEEPER_TAG_SETS`` in the seed spec."""

from __future__ import annotations

VMKEEPER_TAG_SETS: list[dict[str, str]] = [
    {"vmkeeper-policy": "gold", "env": "prod"},
    {"vmkeeper-policy": "silver", "env": "prod"},
    {"vmkeeper-policy": "bronze", "env": "dev"},
    {"env": "dev"},
    {"vmkeeper-optout": "true", "env": "test"},
]

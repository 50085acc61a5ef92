"""The fleet local runs seed into the emulator (whose own default tags are neutral): vmkeeper's tags,
cycled over the VMs — a gold, a silver and a bronze VM, one without a policy tag (the default
policy), one opted out. Pass ``tag_sets=VMKEEPER_TAG_SETS`` in the seed spec; and ``scale_sets=VMKEEPER_SCALE_SETS``
for the fleet's scale sets: a Flexible one of 3 VMs (protected like any VM: default policy) and a small Uniform one
(its instances no kind of point covers: compliance says ``not_supported``)."""

from __future__ import annotations

VMKEEPER_TAG_SETS: list[dict[str, str]] = [
    {"vmkeeper-policy": "gold", "env": "prod"},
    {"vmkeeper-policy": "silver", "env": "prod"},
    {"vmkeeper-policy": "bronze", "env": "dev"},
    {"env": "dev"},
    {"vmkeeper-optout": "true", "env": "test"},
]

FLEXIBLE_SET, UNIFORM_SET = "vmss-web", "vmss-batch"
VMKEEPER_SCALE_SETS: list[dict] = [
    {"name": FLEXIBLE_SET, "orchestration_mode": "Flexible", "capacity": 3, "fault_domains": 3,
     "tags": {"env": "prod", "app": "web"}},
    {"name": UNIFORM_SET, "orchestration_mode": "Uniform", "capacity": 2, "fault_domains": 5,
     "tags": {"env": "prod", "app": "batch"}},
]

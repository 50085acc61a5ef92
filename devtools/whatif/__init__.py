"""A what-if-style dry check of infra/ that needs no Azure (issue 20): every resource the Bicep declares has a
type and api-version its resource provider knows, and every property it sets is in that api-version's schema.

- ``bicep``: what the Bicep declares (tree-sitter-bicep);
- ``sdk_wheels``: schemas from the azure-mgmt-* wheels pinned in ``sdk-wheels.txt`` (what the tests use);
- ``bicep_types``: schemas from a checkout of Azure/bicep-types-az, the Bicep compiler's own index (optional);
- ``check``: the comparison, with what could not be checked listed apart.

``python -m devtools.whatif`` prints the report."""

from __future__ import annotations

import re
import sys
from pathlib import Path

PINS = Path(__file__).with_name("sdk-wheels.txt")


def wheel_folder() -> Path:
    """Where ``make setup`` downloads the pinned wheels: inside the environment, beside what it installs."""
    return Path(sys.prefix) / "arm-sdk-wheels"


def pins() -> list[tuple[str, str]]:
    found = []
    for line in PINS.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"\s*([A-Za-z0-9._-]+)==(\S+)", line.split("#", 1)[0]):
            found.append((m.group(1), m.group(2)))
    return found


def pinned_wheels(folder: Path | None = None) -> list[Path]:
    """The downloaded wheel of every pin; a missing one is an error naming the remedy."""
    folder = folder or wheel_folder()
    found, missing = [], []
    for name, version in pins():
        wheel = sorted(folder.glob(f"{re.sub(r'[-.]', '_', name)}-{version}-*.whl"))
        (found if wheel else missing).append(wheel[0] if wheel else f"{name}=={version}")
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not in {folder}: run `make setup`, which downloads "
                                f"{PINS.relative_to(PINS.parents[2])} there")
    return found

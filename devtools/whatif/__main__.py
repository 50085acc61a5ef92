"""``python -m devtools.whatif [--bicep-types PATH] [FOLDER]``: the dry check's report for FOLDER (infra/),
against the pinned SDK wheels or a checkout of Azure/bicep-types-az. Exit status 1 when something fails."""

from __future__ import annotations

import argparse
from pathlib import Path

from devtools.whatif import bicep, pinned_wheels
from devtools.whatif.accepted import SPEC_GAPS, UNVERIFIABLE
from devtools.whatif.check import check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.whatif", description=__doc__)
    parser.add_argument("folder", nargs="?", default="infra", type=Path)
    parser.add_argument("--bicep-types", type=Path, help="a checkout of Azure/bicep-types-az (or its generated/)")
    args = parser.parse_args(argv)
    if args.bicep_types:  # the compiler's own index has every type@version: nothing is unverifiable there
        from devtools.whatif.bicep_types import BicepTypes
        schemas, unverifiable = BicepTypes(args.bicep_types), {}
    else:
        from devtools.whatif.sdk_wheels import SdkWheels
        schemas, unverifiable = SdkWheels(pinned_wheels()), UNVERIFIABLE
    report = check(bicep.read_folder(args.folder), schemas, unverifiable, SPEC_GAPS)
    print(f"Schemas: {schemas.describe()}")
    print(f"Checked: {len(report.checked)} resources (type and api-version), {len(report.properties)} properties")
    print(f"Not checked ({len(report.unchecked)}):")
    for u in report.unchecked:
        print(f"  {u}")
    print(f"Failed ({len(report.findings)}):")
    for f in report.findings:
        print(f"  {f}")
    return 1 if report.findings else 0


if __name__ == "__main__":
    raise SystemExit(main())

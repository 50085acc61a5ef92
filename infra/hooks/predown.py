"""azd predown hook (azure.yaml): before azd down, write the plan of what vmkeeper made outside rg-<env> (from
main.bicep's outputs, which azd removes once the groups are deleted) and check the sign-in. Deletes nothing."""

import sys

from vmkeeper_hooks.main import predown, run

if __name__ == "__main__":
    sys.exit(run(predown))

"""azd postdeploy hook (azure.yaml): subscribe vm_events to every protected subscription's Event Grid system topic,
once the code (hence the function Event Grid checks) is deployed. Signed in as azd is (azd auth login): no Azure CLI."""

import sys

from vmkeeper_hooks.main import postdeploy, run

if __name__ == "__main__":
    sys.exit(run(postdeploy))

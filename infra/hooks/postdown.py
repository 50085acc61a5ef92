"""azd postdown hook (azure.yaml): once azd down has deleted rg-<env>, delete what vmkeeper made outside it
(the predown's plan), each only if it is still vmkeeper's; report and exit 1 for anything kept."""

import sys

from vmkeeper_hooks.main import postdown, run

if __name__ == "__main__":
    sys.exit(run(postdown))

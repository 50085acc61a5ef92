"""Local development around the function app: the local Functions host, the launchers of Azurite
and of the ARM emulator as child processes, and the fleet the demo, benchmarks and tests seed.

Unlike ``emulator`` (local Azure, which knows nothing of vmkeeper), this package knows the app:
its host.json, its tags. It never imports the app's code (``shared``, ``functions``)."""

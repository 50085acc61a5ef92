"""vmkeeper's azd hooks (azure.yaml): the work they do, run by the scripts beside this package
(postdeploy.py, predown.py, postdown.py) and tested against the local ARM emulator (tests/infra/test_hooks.py)."""

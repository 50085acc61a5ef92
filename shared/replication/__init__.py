"""Site Recovery (Azure-to-Azure): replicate the VMs a policy marks critical to a region of choice.
``names`` (what ASR objects are called), ``select`` (which VMs, pure), ``plan`` (what to create and how to read
ASR's answers, pure), ``steps`` (one job step through the SDK), ``service`` (entry points)."""

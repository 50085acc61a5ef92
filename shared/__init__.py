"""vmkeeper's core library: policy, planning, retention and Azure operations (no trigger types)."""

__version__ = "0.1.0"

"""vmkeeper's core library: policy, planning, retention and Azure operations (no trigger types)."""

"""Site Recovery failovers: one recovery plan per application kept in step with the fleet's tags (keeper →
plans, a timer), and failovers of a plan or a VM asked over HTTP and run step by step from a queue (api →
service → steps, records for state), reading Site Recovery through asr.py."""

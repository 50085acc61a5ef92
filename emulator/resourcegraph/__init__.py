"""Microsoft.ResourceGraph: the Resources table queried with the emulator's KQL subset (kql.py)."""

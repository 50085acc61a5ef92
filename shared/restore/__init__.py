"""On-demand restore: a VM's recovery point catalogue, and restores into new disks, a new VM, an
existing VM's OS disk, or through Azure Backup's own restore types — planned before anything is
written, then run step by step from a queue (api → service → plan/steps, records for state)."""

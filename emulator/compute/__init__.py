"""Microsoft.Compute: virtual machines, managed disks, snapshots, restore point collections,
restore points and disk restore points."""

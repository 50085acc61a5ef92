"""Microsoft.RecoveryServices: vaults and Azure VM backup (policies, discovery, protected items,
on-demand and scheduled recovery points, restores, jobs, backupStatus)."""

"""Microsoft.RecoveryServices Site Recovery (Azure-to-Azure, api-version 2025-08-01): replication fabrics,
protection containers and their mappings, replication policies, network mappings, replicated items with
their recovery points, test failover, failover, commit, reprotect, recovery plans, jobs and eligibility."""

// One Recovery Services vault (one per protected region) and the Azure Backup policies the policy document
// (policies.json: each policy's backup_policy) names. A Site Recovery target region's vault is one of these: the vault
// of the region a policy's replication block replicates to, where vmkeeper makes Site Recovery's objects.
param name string
param location string
param tags object = {}

@description('A system-assigned identity: a Site Recovery target region\'s vault writes the source regions\' cache storage accounts with it.')
param systemAssignedIdentity bool = false

@description('Time zone of the backup schedules.')
param timeZone string = 'UTC'

@description('Log Analytics workspace the vault\'s Azure Backup logs go to.')
param workspaceId string

@description('Vault immutability: Unlocked (reversible) or Locked (irreversible). Azure refuses to create a vault Locked: deploy Unlocked first, then Locked (infra/README.md).')
@allowed([
  'Unlocked'
  'Locked'
])
param immutabilityState string = 'Unlocked'

@description('Multi-user authorization: the Resource Guard (Microsoft.DataProtection/resourceGuards, owned by a security admin, ideally in another subscription or tenant) the vault\'s critical operations need. Empty: no MUA.')
param resourceGuardId string = ''

resource vault 'Microsoft.RecoveryServices/vaults@2024-04-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: systemAssignedIdentity ? 'SystemAssigned' : 'None'
  }
  sku: {
    name: 'RS0'
    tier: 'Standard'
  }
  properties: {
    publicNetworkAccess: 'Enabled'
    // Soft delete always-on (it can never be disabled again) and immutability (Unlocked, or Locked for good):
    // what an identity that can write the vault can't take back (infra/README.md, "Protected vaults").
    securitySettings: {
      softDeleteSettings: {
        softDeleteState: 'AlwaysON'
        softDeleteRetentionPeriodInDays: 14
      }
      immutabilitySettings: {
        state: immutabilityState
      }
    }
  }
}

// Multi-user authorization: the vault's critical operations (disable soft delete, remove MUA, stop protection with
// delete data, reduce retention, restores where the guard protects them) need the guard owner's just-in-time grant.
// The deploying user needs Reader on the guard. Removing the parameter later removes nothing: taking MUA off is
// itself a critical operation, the guard owner's to approve.
resource resourceGuardProxy 'Microsoft.RecoveryServices/vaults/backupResourceGuardProxies@2024-04-01' = if (!empty(resourceGuardId)) {
  parent: vault
  name: 'VaultProxy'
  properties: {
    resourceGuardResourceId: resourceGuardId
  }
}

// Standard: daily at 23:00, 2 days of instant restore snapshots, 30 daily points.
resource defaultPolicy 'Microsoft.RecoveryServices/vaults/backupPolicies@2024-04-01' = {
  parent: vault
  name: 'DefaultPolicy'
  properties: {
    backupManagementType: 'AzureIaasVM'
    policyType: 'V1'
    instantRpRetentionRangeInDays: 2
    timeZone: timeZone
    schedulePolicy: {
      schedulePolicyType: 'SimpleSchedulePolicy'
      scheduleRunFrequency: 'Daily'
      scheduleRunTimes: [
        '2024-01-01T23:00:00Z'
      ]
    }
    retentionPolicy: {
      retentionPolicyType: 'LongTermRetentionPolicy'
      dailySchedule: {
        retentionTimes: [
          '2024-01-01T23:00:00Z'
        ]
        retentionDuration: {
          count: 30
          durationType: 'Days'
        }
      }
    }
  }
}

// Enhanced (V2): every 4 hours over 24 h, 7 days of instant restore, 30 daily and 12 weekly points.
resource enhancedPolicy 'Microsoft.RecoveryServices/vaults/backupPolicies@2024-04-01' = {
  parent: vault
  name: 'EnhancedPolicy'
  properties: {
    backupManagementType: 'AzureIaasVM'
    policyType: 'V2'
    instantRpRetentionRangeInDays: 7
    timeZone: timeZone
    schedulePolicy: {
      schedulePolicyType: 'SimpleSchedulePolicyV2'
      scheduleRunFrequency: 'Hourly'
      hourlySchedule: {
        interval: 4
        scheduleWindowStartTime: '2024-01-01T00:00:00Z'
        scheduleWindowDuration: 24
      }
    }
    retentionPolicy: {
      retentionPolicyType: 'LongTermRetentionPolicy'
      dailySchedule: {
        retentionTimes: [
          '2024-01-01T00:00:00Z'
        ]
        retentionDuration: {
          count: 30
          durationType: 'Days'
        }
      }
      weeklySchedule: {
        daysOfTheWeek: [
          'Sunday'
        ]
        retentionTimes: [
          '2024-01-01T00:00:00Z'
        ]
        retentionDuration: {
          count: 12
          durationType: 'Weeks'
        }
      }
    }
  }
}

// Azure Backup's own resource-specific tables (jobs, alerts, policies, storage, protected instances): what Backup
// reports and the Backup center read, next to vmkeeper's logs. Only on the vaults vmkeeper makes: an existing
// vault (existingVaultIds) is its owner's to configure.
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'vmkeeper-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        category: 'CoreAzureBackup'
        enabled: true
      }
      {
        category: 'AddonAzureBackupJobs'
        enabled: true
      }
      {
        category: 'AddonAzureBackupAlerts'
        enabled: true
      }
      {
        category: 'AddonAzureBackupPolicy'
        enabled: true
      }
      {
        category: 'AddonAzureBackupStorage'
        enabled: true
      }
      {
        category: 'AddonAzureBackupProtectedInstance'
        enabled: true
      }
    ]
  }
}

output id string = vault.id
output principalId string = systemAssignedIdentity ? vault.identity.principalId : ''
output policies array = [
  defaultPolicy.name
  enhancedPolicy.name
]

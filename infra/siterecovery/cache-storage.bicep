// A Site Recovery cache storage account in one source region (docs/site-recovery.md, a policy's
// replication.cache_storage_accounts): Site Recovery stages a replicated VM's disk changes here before they reach the
// target region. Standard general-purpose v2, as Site Recovery's support matrix asks of a cache; no shared keys, no
// public blob access. Site Recovery writes it as the target-region vault, with the vault's system-assigned identity:
// each target vault gets Storage Blob Data Contributor on this account and nothing else. vmkeeper's own identity
// needs only Microsoft.Storage/storageAccounts/read here (ARM's linked check when it enables replication), which its
// custom role holds at rg-<env>.
param name string

@description('The source region: the cache must be in the region of the VMs it replicates.')
param location string
param tags object = {}

@description('The system-assigned identities (principal ids) of the target-region vaults that replicate through this cache.')
param vaultPrincipalIds array

// Storage Blob Data Contributor (Microsoft Learn, "Azure built-in roles for Storage"): read, write and delete blobs and
// containers; no management of the account, no keys.
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: union(tags, {
    'vmkeeper-site-recovery-cache': location
  })
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    // Site Recovery's support matrix: allow all networks (a cache restricted to some VNets breaks replication) and
    // trusted Microsoft services.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource vaultAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in vaultPrincipalIds: {
  name: guid(account.id, principalId, storageBlobDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vmkeeper: Site Recovery writes replication changes to this cache as the target vault'
  }
}]

output id string = account.id
output name string = account.name

// The app's storage account: identity-only (no shared keys), its queues (each with the -poison queue the
// Functions host moves a message to after maxDequeueCount), tables, the deployment and dead-letter containers.
param name string
param location string
param tags object = {}

@description('The app\'s queues: key -> queue name; each gets its <name>-poison queue too.')
param queues object

@description('The app\'s tables: key -> table name.')
param tables object

@description('Blob containers: the Flex Consumption deployment package, Event Grid dead letters.')
param containers array

@description('Log Analytics workspace the blob, queue and table services log to.')
param workspaceId string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for container in containers: {
  parent: blobService
  name: container
  properties: {
    publicAccess: 'None'
  }
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource workQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queue in items(queues): {
  parent: queueService
  name: queue.value
}]

resource poisonQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queue in items(queues): {
  parent: queueService
  name: '${queue.value}-poison'
}]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource appTables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for table in items(tables): {
  parent: tableService
  name: table.value
}]

// Every read, write and delete of the blob (package, dead letters), queue and table services, with who made it (the
// identity's object id), in the workspace's StorageBlobLogs / StorageQueueLogs / StorageTableLogs.
var storageLogs = [
  {
    category: 'StorageRead'
    enabled: true
  }
  {
    category: 'StorageWrite'
    enabled: true
  }
  {
    category: 'StorageDelete'
    enabled: true
  }
]
var storageMetrics = [
  {
    category: 'Transaction'
    enabled: true
  }
]

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'vmkeeper-to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: workspaceId
    logs: storageLogs
    metrics: storageMetrics
  }
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'vmkeeper-to-log-analytics'
  scope: queueService
  properties: {
    workspaceId: workspaceId
    logs: storageLogs
    metrics: storageMetrics
  }
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'vmkeeper-to-log-analytics'
  scope: tableService
  properties: {
    workspaceId: workspaceId
    logs: storageLogs
    metrics: storageMetrics
  }
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob

// The Log Analytics workspace: App Insights' store and where the app, its storage, the vaults and the alerts topic
// send their resource logs. Microsoft Entra ID only (features.disableLocalAuth: no workspace keys for agents or the
// query API); readers see the rows of the resources they may read. A plain resource: the pinned AVM module (0.7.0)
// could not switch local auth off.
param name string
param location string
param tags object = {}

@description('Days the workspace keeps data.')
param retentionInDays int

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      disableLocalAuth: true
      enableLogAccessUsingOnlyResourcePermissions: true
    }
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

output resourceId string = workspace.id
output name string = workspace.name

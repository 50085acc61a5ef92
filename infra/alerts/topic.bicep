// vmkeeper's alerts topic: an Event Grid custom topic taking CloudEvents 1.0, published to with Microsoft Entra
// tokens only (no access keys), its publish and delivery failures logged to the app's Log Analytics workspace.
param name string
param location string
param tags object = {}

@description('The user-assigned identity the topic\'s event subscriptions dead-letter with (infra/alerts/webhook-subscription.bicep).')
param identityId string

@description('Publishing over the public network. Disabled: only through a private endpoint (not made here), so the app needs VNet integration to reach it.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string = 'Enabled'

@description('Log Analytics workspace resource id for the topic\'s diagnostic logs.')
param workspaceId string

resource topic 'Microsoft.EventGrid/topics@2025-02-15' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    // Keys off: the publisher must hold EventGrid Data Sender on this topic (infra/alerts/data-sender.bicep).
    disableLocalAuth: true
    publicNetworkAccess: publicNetworkAccess
    minimumTlsVersionAllowed: '1.2'
  }
}

// A publish refused (401/403: the role missing or not yet propagated; 400: a malformed event) and a delivery that
// failed are where an alert gets lost: both land in the workspace (AegPublishFailureLogs, AegDeliveryFailureLogs).
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'vmkeeper-alerts-to-log-analytics'
  scope: topic
  properties: {
    workspaceId: workspaceId
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        category: 'PublishFailures'
        enabled: true
      }
      {
        category: 'DeliveryFailures'
        enabled: true
      }
    ]
  }
}

output id string = topic.id
output name string = topic.name
output endpoint string = topic.properties.endpoint

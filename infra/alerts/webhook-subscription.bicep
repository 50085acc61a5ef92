// An operator's webhook on the alerts topic: every vmkeeper alert, delivered as a CloudEvent (one per request),
// retried, then dead-lettered to the app's storage with the user-assigned identity (the account takes no keys).
// Event Grid checks the endpoint when the subscription is made (CloudEvents abuse protection: an HTTP OPTIONS
// answered with WebHook-Allowed-Origin), so the endpoint must be up and answer it (infra/README.md, "Alerts").
param topicName string

@secure()
@description('The webhook\'s https URL; it may carry its own key (e.g. a Logic App trigger\'s sig=), hence secure.')
param webhookUrl string

param identityId string
param storageAccountId string
param deadLetterContainerName string

@description('Delivery attempts before an alert is dead-lettered.')
param maxDeliveryAttempts int = 30

@description('Minutes an alert is retried for.')
param eventTimeToLiveInMinutes int = 1440

resource topic 'Microsoft.EventGrid/topics@2025-02-15' existing = {
  name: topicName
}

// No filter: the topic carries vmkeeper's alerts only, and a type the code adds later must not be dropped here.
resource webhook 'Microsoft.EventGrid/topics/eventSubscriptions@2025-02-15' = {
  parent: topic
  name: 'vmkeeper-alerts-webhook'
  properties: {
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: webhookUrl
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
        minimumTlsVersionAllowed: '1.2'
      }
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'UserAssigned'
        userAssignedIdentity: identityId
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storageAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output id string = webhook.id

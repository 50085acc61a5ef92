// A protected subscription's Event Grid system topic (Microsoft.Resources.Subscriptions: one per subscription
// at most), in a resource group of that subscription. Deployed at subscription(<id>).
targetScope = 'subscription'

param resourceGroupName string
param location string
param topicName string

@description('The user-assigned identity the topic dead-letters with.')
param identityId string
param tags object = {}

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupName
  location: location
  tags: tags
}

module topic 'system-topic.bicep' = {
  name: 'system-topic-${topicName}'
  scope: group
  params: {
    name: topicName
    identityId: identityId
    tags: tags
  }
}

output id string = topic.outputs.id

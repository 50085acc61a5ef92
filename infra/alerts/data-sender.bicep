// The app's identity may publish to the alerts topic, and to nothing else: the built-in EventGrid Data Sender role
// (data action Microsoft.EventGrid/events/send/action) at the topic's own scope. Deployed to the topic's resource
// group, so it serves vmkeeper's own topic and an existing one (main.bicep: existingAlertsTopicId) alike.
param topicName string
param principalId string

// EventGrid Data Sender, from Microsoft Learn, "Azure built-in roles for Integration"
// (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/integration#eventgrid-data-sender).
var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7'

resource topic 'Microsoft.EventGrid/topics@2025-02-15' existing = {
  name: topicName
}

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, principalId, eventGridDataSender)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vmkeeper: publish alerts (CloudEvents) to this topic'
  }
}

output topicId string = topic.id
output endpoint string = topic.properties.endpoint
// On an existing topic (outside rg-<env>) the teardown deletes it (main.bicep output VMKEEPER_ALERTS_ROLE_ASSIGNMENT_ID).
output assignmentId string = assignment.id

// vm_events' event subscriptions, one per system topic. Deployed by infra/hooks/postdeploy.sh after the code
// (the function, hence its Event Grid endpoint, exists only then): `az deployment sub create`.
targetScope = 'subscription'

@description('System topic resource ids (main.bicep output EVENTGRID_SYSTEM_TOPIC_IDS).')
param systemTopicIds array

param functionAppId string
param identityId string
param storageAccountId string
param deadLetterContainerName string

module subscriptions 'event-subscription.bicep' = [for (topicId, i) in systemTopicIds: {
  name: 'vmkeeper-vm-events-${i}'
  scope: resourceGroup(split(topicId, '/')[2], split(topicId, '/')[4])
  params: {
    topicName: last(split(topicId, '/'))
    functionAppId: functionAppId
    identityId: identityId
    storageAccountId: storageAccountId
    deadLetterContainerName: deadLetterContainerName
  }
}]

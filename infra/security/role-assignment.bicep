// The custom role for vmkeeper's identity at one protected subscription (deployed at subscription(<id>)).
targetScope = 'subscription'

@description('The custom role definition\'s name (GUID).')
param roleDefinitionName string
param principalId string

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, roleDefinitionName)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionName)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vmkeeper: automatic VM backup (least privilege custom role)'
  }
}

// What the teardown deletes (main.bicep output VMKEEPER_ROLE_ASSIGNMENT_IDS): a subscription's assignment outlives azd down.
output id string = assignment.id

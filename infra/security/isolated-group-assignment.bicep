// The second identity's custom role at the backup subscription's group that holds the isolated copies.
@description('The custom role definition\'s name (GUID).')
param roleDefinitionName string
param principalId string

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, roleDefinitionName)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionName)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vmkeeper: isolated copies (the second identity)'
  }
}

output id string = assignment.id

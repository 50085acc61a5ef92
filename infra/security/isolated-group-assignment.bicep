// A custom role at the backup subscription's group that holds the isolated copies (the second identity's; the app's reader role).
@description('The custom role definition\'s name (GUID).')
param roleDefinitionName string
param principalId string
@description('What the assignment is for (its description).')
param purpose string = 'vmkeeper: isolated copies (the second identity)'

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, roleDefinitionName)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionName)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: purpose
  }
}

output id string = assignment.id

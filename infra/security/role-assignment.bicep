// The custom role for vmkeeper's identity at one protected subscription (deployed at subscription(<id>)).
targetScope = 'subscription'

param roleDefinitionId string
param principalId string

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, roleDefinitionId)
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vmkeeper: automatic VM backup (least privilege custom role)'
  }
}

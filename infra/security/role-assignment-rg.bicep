// The custom role for vmkeeper's identity at the resource group of its vaults, when that subscription is
// not one it protects.
@description('The custom role definition\'s name (GUID).')
param roleDefinitionName string
param principalId string

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, roleDefinitionName)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionName)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vmkeeper: its Recovery Services vaults'
  }
}

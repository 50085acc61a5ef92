// The custom role for vmkeeper's identity at the resource group of its vaults, when that subscription is
// not one it protects.
param roleDefinitionId string
param principalId string

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, roleDefinitionId)
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vmkeeper: its Recovery Services vaults'
  }
}

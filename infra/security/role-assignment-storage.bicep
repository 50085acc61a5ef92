// A custom role for vmkeeper's identity at one storage account (deployed at the account's resource group): the
// staging role at a restore staging account. The account must exist: it is the operator's.
@description('The custom role definition\'s name (GUID).')
param roleDefinitionName string
param principalId string
param storageAccountName string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roleDefinitionName)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionName)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vmkeeper: stage Azure Backup restores in this storage account'
  }
}

// What the teardown deletes (main.bicep output VMKEEPER_STAGING_ROLE_ASSIGNMENT_IDS): it outlives azd down.
output id string = assignment.id

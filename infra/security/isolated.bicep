// Isolated copies (docs/isolated-copies.md), deployed at the backup subscription (subscription(<id>)): the group
// that holds the copies, the second identity's custom role there (infra/vmkeeper-isolated-role.json, assignable at
// that group only) and its assignment at the group. Production's identity gets nothing here.
targetScope = 'subscription'

param environmentName string
param resourceGroupName string
param location string
param tags object = {}

@description('The second identity\'s principal id (the user-assigned identity main.bicep makes for it).')
param principalId string

var role = loadJsonContent('../vmkeeper-isolated-role.json')

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupName
  location: location
  tags: tags
}

resource definition 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'vmkeeper-isolated-role')
  properties: {
    roleName: '${role.roleName} (${environmentName})'
    description: role.description
    type: 'CustomRole'
    permissions: [
      {
        actions: role.actions
        notActions: role.notActions
        dataActions: role.dataActions
        notDataActions: role.notDataActions
      }
    ]
    assignableScopes: [
      group.id
    ]
  }
}

module assignment 'isolated-group-assignment.bicep' = {
  name: 'vmkeeper-isolated-assignment'
  scope: group
  params: {
    roleDefinitionName: definition.name
    principalId: principalId
  }
}

// What the teardown deletes (main.bicep outputs VMKEEPER_ISOLATED_ROLE_…): none of it is in rg-<env>. The group
// and its copies are left: deleting backups is not a teardown's business (infra/README.md).
output roleDefinitionId string = definition.id
output roleAssignmentId string = assignment.outputs.id
output resourceGroupId string = group.id

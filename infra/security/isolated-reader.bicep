// Isolated copies (docs/isolated-copies.md), at the backup subscription: vmkeeper's own (production) identity may
// READ the copies in the backup group, and nothing more (infra/vmkeeper-isolated-reader-role.json: snapshots/read and
// snapshots/beginGetAccess/action, the linked access check on a disk made from a copy). The restore catalogue offers
// the copies and a restore makes disks from them with the app's identity, so restores work without the second
// identity; no write, no delete: whoever holds the app's identity still cannot delete a copy.
targetScope = 'subscription'

param environmentName string
@description('The backup subscription\'s group that holds the copies (made by isolated.bicep).')
param resourceGroupName string

@description('vmkeeper\'s own identity\'s principal id (the app\'s user-assigned identity).')
param principalId string

var role = loadJsonContent('../vmkeeper-isolated-reader-role.json')

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' existing = {
  name: resourceGroupName
}

resource definition 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'vmkeeper-isolated-reader-role')
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
  name: 'vmkeeper-isolated-reader-assignment'
  scope: group
  params: {
    roleDefinitionName: definition.name
    principalId: principalId
    purpose: 'vmkeeper: reading the isolated copies (the app\'s identity: restores)'
  }
}

output roleDefinitionId string = definition.id
output roleAssignmentId string = assignment.outputs.id

// vmkeeper's one custom role: its permissions are infra/vmkeeper-role.json (kept apart so the role can be
// checked against the ARM operations the app really calls). Assignable in every protected subscription.
targetScope = 'subscription'

param environmentName string

@description('Scopes the role may be assigned at: /subscriptions/<id> of each protected subscription.')
param assignableScopes array

var role = loadJsonContent('../vmkeeper-role.json')

resource definition 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'vmkeeper-role')
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
    assignableScopes: assignableScopes
  }
}

// The definition's name (a GUID): an assignment in another subscription names it by that subscription's path.
output roleDefinitionName string = definition.name
// What the teardown deletes (main.bicep output VMKEEPER_ROLE_DEFINITION_IDS): a subscription's role outlives azd down.
output id string = definition.id

// The second identity's role in production (infra/vmkeeper-isolated-source-role.json): only what reading the
// snapshot sets it copies needs (ARM's linked access check on a copy's source). Assignable in every protected
// subscription; main.bicep assigns it in each (security/role-assignment.bicep).
targetScope = 'subscription'

param environmentName string

@description('Scopes the role may be assigned at: /subscriptions/<id> of each protected subscription.')
param assignableScopes array

var role = loadJsonContent('../vmkeeper-isolated-source-role.json')

resource definition 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'vmkeeper-isolated-source-role')
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

output roleDefinitionName string = definition.name
output id string = definition.id

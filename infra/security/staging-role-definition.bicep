// vmkeeper's second custom role: what Azure Backup checks on the caller of a restore on the staging storage account
// it names (infra/vmkeeper-staging-role.json; Learn, backup-rbac-rs-vault, "Restore managed disks from VM backup":
// Microsoft.Storage/storageAccounts/write on the "Temporary Storage account selected as part of restore"). Kept
// apart from infra/vmkeeper-role.json so it is assigned at the staging accounts alone, never at a subscription.
targetScope = 'subscription'

@description('The definition\'s name (a GUID, known before it exists: the assignments name it).')
param name string
param environmentName string

@description('Scopes the role may be assigned at: /subscriptions/<id> of each staging account\'s subscription.')
param assignableScopes array

var role = loadJsonContent('../vmkeeper-staging-role.json')

resource definition 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: name
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

// What the teardown deletes (main.bicep output VMKEEPER_STAGING_ROLE_DEFINITION_IDS): the role outlives azd down.
output id string = definition.id

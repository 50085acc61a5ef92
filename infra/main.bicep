// vmkeeper: everything `azd up` provisions (infra/README.md). Subscription scope: the resource group,
// the custom role and its assignments in every protected subscription, Event Grid system topics.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name: part of every resource name and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Region of the resource group, the function app, its storage and monitoring.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Subscription ids whose VMs vmkeeper protects (VMKEEPER_SUBSCRIPTIONS). Empty: this subscription.')
param protectedSubscriptionIds array = []

@description('Regions to protect: one Recovery Services vault per region not in existingVaultIds. Empty: location.')
param backupRegions array = []

@description('Existing Recovery Services vaults to use instead of new ones: region -> vault resource id.')
param existingVaultIds object = {}

@description('Immutability of the vaults vmkeeper makes: Unlocked (reversible) or Locked (irreversible; Azure locks only a vault that is Unlocked already: deploy Unlocked first). Soft delete is always-on either way.')
@allowed([
  'Unlocked'
  'Locked'
])
param vaultImmutability string = 'Unlocked'

@description('Multi-user authorization on the vaults vmkeeper makes: a Resource Guard\'s resource id (Microsoft.DataProtection/resourceGuards, in the vault\'s region, owned by a security admin in another subscription or tenant; the deploying user needs Reader on it). Empty: no MUA.')
param resourceGuardId string = ''

@description('Site Recovery: regions replicated VMs run in (a policy\'s replication.cache_storage_accounts keys). Each gets a cache storage account in rg-<env> (output SITE_RECOVERY_CACHE_ACCOUNT_IDS). Empty: none.')
param siteRecoverySourceRegions array = []

@description('Site Recovery: regions a policy\'s replication block replicates to (replication.target_region). Each has a vault (one of the vaults above: a region missing from backupRegions gets one too) with a system-assigned identity, Storage Blob Data Contributor on every cache account. Empty: none.')
param siteRecoveryTargetRegions array = []

@description('Existing Event Grid system topics (Microsoft.Resources.Subscriptions; one per subscription at most): subscription id -> topic resource id. The other protected subscriptions get a new topic.')
param existingSystemTopicIds object = {}

@description('Most instances the Flex Consumption app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per instance (MB).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('NCRONTAB of the planning timer (VMKEEPER_SCHEDULE).')
param schedule string = '0 */15 * * * *'

@description('NCRONTAB of the retention pass (VMKEEPER_RETENTION_SCHEDULE).')
param retentionSchedule string = '0 30 3 * * *'

@description('Retention decides and records only (VMKEEPER_RETENTION_DRY_RUN).')
param retentionDryRun bool = false

@description('Take a first backup once a VM is protected (VMKEEPER_BACKUP_NOW).')
param backupNow bool = false

@description('Resource ids (subscriptions, resource groups) restores may write to (VMKEEPER_RESTORE_SCOPES). Empty: none.')
param restoreScopes array = []

@description('App Service authentication for the restore API: Entra ID tenant. Empty: this tenant.')
param authTenantId string = ''

@description('App Service authentication: the API app registration client id. Empty: authentication off (the restore API then answers 401 to everyone).')
param authClientId string = ''

@description('App Service authentication: allowed token audiences. Empty: api://<authClientId>.')
param authAllowedAudiences array = []

@description('NCRONTAB of the RPO compliance evaluation (VMKEEPER_COMPLIANCE_SCHEDULE).')
param complianceSchedule string = '0 */30 * * * *'

@description('NCRONTAB of the cost per VM run (VMKEEPER_COST_SCHEDULE): one Cost Management query per subscription a day; run more often to retry a throttled subscription the same day.')
param costSchedule string = '0 15 6 * * *'

@description('NCRONTAB of the DR drill planner (VMKEEPER_DRILL_SCHEDULE): daily, each VM drilled once per its policy\'s drill.every_days.')
param drillSchedule string = '0 0 3 * * *'

@description('NCRONTAB of the Site Recovery sweep (VMKEEPER_REPLICATION_SCHEDULE): VMs that should replicate and do not yet (a tag added later, a policy changed).')
param replicationSchedule string = '0 10,40 * * * *'
@description('NCRONTAB of the auto-protect sweep (VMKEEPER_PROTECT_SCHEDULE): VMs Azure Backup should protect that no creation event enrolled (older than vmkeeper, tagged later, an event lost). Half-hourly, apart from compliance\'s and Site Recovery\'s minutes.')
param protectSchedule string = '0 5,35 * * * *'
@description('NCRONTAB of the sweep that keeps one Site Recovery recovery plan per application in step with the VMs\' vmkeeper-app tags (VMKEEPER_RECOVERY_PLAN_SCHEDULE).')
param recoveryPlanSchedule string = '0 */15 * * * *'

@description('Alerts published to an Event Grid custom topic. false: no topic, VMKEEPER_ALERTS_TOPIC_ENDPOINT empty (alerts are recorded, not published).')
param alertsEnabled bool = true

@description('An existing Event Grid custom topic (CloudEvents 1.0 input schema) to publish alerts to instead of a new one: its resource id. Empty: vmkeeper makes its own.')
param existingAlertsTopicId string = ''

@description('Public network access of the alerts topic vmkeeper makes.')
@allowed([
  'Enabled'
  'Disabled'
])
param alertsPublicNetworkAccess string = 'Enabled'

@secure()
@description('An https webhook every alert is delivered to as a CloudEvent (an event subscription on the topic vmkeeper makes). Empty: none.')
param alertWebhookUrl string = ''

@description('Log Analytics retention in days.')
param logRetentionDays int = 30

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var subscriptionIds = empty(protectedSubscriptionIds) ? [
  subscription().subscriptionId
] : map(protectedSubscriptionIds, s => toLower(s))
var drSourceRegions = map(siteRecoverySourceRegions, r => toLower(replace(r, ' ', '')))
var drTargetRegions = map(siteRecoveryTargetRegions, r => toLower(replace(r, ' ', '')))
// A Site Recovery target region's vault is a vault like the others (VMKEEPER_VAULTS names it): made if missing.
var regions = union(empty(backupRegions) ? [
  location
] : map(backupRegions, r => toLower(replace(r, ' ', ''))), drTargetRegions)
var newVaultRegions = filter(regions, r => !contains(existingVaultIds, r))
// The target vaults vmkeeper makes (an existing one's identity is its owner's to turn on and grant: infra/README.md).
var drTargetVaultRegions = filter(drTargetRegions, r => !contains(existingVaultIds, r))
var newTopicSubscriptionIds = filter(subscriptionIds, s => !contains(existingSystemTopicIds, s))
var resourceGroupName = 'rg-${environmentName}'
var eventsResourceGroupName = 'rg-${environmentName}-events'
var systemTopicName = 'evgt-vmkeeper-${resourceToken}'
var vaultPrefix = 'rsv-${resourceToken}-'
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'
var deadLetterContainerName = 'eventgrid-deadletter'
var alertsTopicName = 'evgt-vmkeeper-alerts-${resourceToken}'
var createAlertsTopic = alertsEnabled && empty(existingAlertsTopicId)
// The topic alerts go to: the existing one, else vmkeeper's. With alerts off it is still a well-formed id (never
// deployed), as ARM evaluates a skipped module's scope too.
var newAlertsTopicId = '/subscriptions/${subscription().subscriptionId}/resourceGroups/${resourceGroupName}/providers/Microsoft.EventGrid/topics/${alertsTopicName}'
var alertsTopicId = (alertsEnabled && !empty(existingAlertsTopicId)) ? existingAlertsTopicId : newAlertsTopicId

// The queue and table names: the code's defaults (shared/settings.py), the bindings' %SETTING%s and the
// storage account's queues and tables all come from here (tests/infra checks they agree).
var queues = {
  protect: 'vmkeeper-protect'
  jobs: 'vmkeeper-jobs'
  restores: 'vmkeeper-restores'
  drills: 'vmkeeper-drills'
  replication: 'vmkeeper-replication'
  failovers: 'vmkeeper-failovers'
}
var tables = {
  protect: 'vmkeeperprotection'
  ledger: 'vmkeeperledger'
  budget: 'vmkeeperbudget'
  restores: 'vmkeeperrestores'
  alerts: 'vmkeeperalerts'
  failovers: 'vmkeeperfailovers'
  cost: 'vmkeepercost'
}

// Vault ids are known before the vaults exist: VMKEEPER_VAULTS names the new ones and the existing ones.
var newVaultIds = toObject(newVaultRegions, r => r, r => '/subscriptions/${subscription().subscriptionId}/resourceGroups/${resourceGroupName}/providers/Microsoft.RecoveryServices/vaults/${vaultPrefix}${r}')
var vaultIds = union(newVaultIds, existingVaultIds)

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupName
  location: location
  tags: tags
}

module identity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-vmkeeper-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    queues: queues
    tables: tables
    containers: [
      deploymentContainerName
      deadLetterContainerName
    ]
    workspaceId: logAnalytics.outputs.resourceId
  }
}

// Entra ID only (disableLocalAuth); the app, its storage, the vaults and the alerts topic log to it.
module logAnalytics 'monitoring/workspace.bicep' = {
  name: 'loganalytics'
  scope: rg
  params: {
    name: 'log-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionDays
  }
}

module appInsights 'br/public:avm/res/insights/component:0.4.1' = {
  name: 'appinsights'
  scope: rg
  params: {
    name: 'appi-${resourceToken}'
    location: location
    tags: tags
    workspaceResourceId: logAnalytics.outputs.resourceId
    disableLocalAuth: true
  }
}

module plan 'br/public:avm/res/web/serverfarm:0.1.1' = {
  name: 'plan'
  scope: rg
  params: {
    name: 'plan-${resourceToken}'
    location: location
    tags: tags
    sku: {
      name: 'FC1'
      tier: 'FlexConsumption'
    }
    reserved: true
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    appInsightsName: appInsights.outputs.name
    principalId: identity.outputs.principalId
  }
}

module vaults 'backup/vault.bicep' = [for region in newVaultRegions: {
  name: 'vault-${region}'
  scope: rg
  params: {
    name: '${vaultPrefix}${region}'
    location: region
    tags: tags
    systemAssignedIdentity: contains(drTargetRegions, region)
    workspaceId: logAnalytics.outputs.resourceId
    immutabilityState: vaultImmutability
    resourceGuardId: resourceGuardId
  }
}]

// --- Site Recovery: a cache storage account per source region ---------------------------------------------------
// In rg-<env> (vmkeeper's custom role there covers the storageAccounts/read ARM checks when replication is enabled),
// each writable by the target vaults' identities only (Storage Blob Data Contributor; no shared keys).
var cacheAccountNames = toObject(drSourceRegions, r => r, r => 'stc${resourceToken}${take(uniqueString(r), 8)}')

module siteRecoveryCaches 'siterecovery/cache-storage.bicep' = [for region in drSourceRegions: {
  name: 'site-recovery-cache-${region}'
  scope: rg
  params: {
    name: cacheAccountNames[region]
    location: region
    tags: tags
    vaultPrincipalIds: [for target in drTargetVaultRegions: vaults[indexOf(newVaultRegions, target)].outputs.principalId]
  }
}]
// --- end of Site Recovery ----------------------------------------------------------------------------------------

module app 'app/function.bicep' = {
  name: 'app'
  scope: rg
  dependsOn: [
    rbac
    vaults
    alertsSender
  ]
  params: {
    name: functionAppName
    location: location
    tags: tags
    planId: plan.outputs.resourceId
    identityId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    appInsightsConnectionString: appInsights.outputs.connectionString
    workspaceId: logAnalytics.outputs.resourceId
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    queues: queues
    tables: tables
    vaults: string(vaultIds)
    subscriptions: join(subscriptionIds, ',')
    restoreScopes: join(restoreScopes, ',')
    restoreStagingAccounts: join(restoreStagingAccountIds, ',')
    schedule: schedule
    complianceSchedule: complianceSchedule
    costSchedule: costSchedule
    drillSchedule: drillSchedule
    replicationSchedule: replicationSchedule
    protectSchedule: protectSchedule
    recoveryPlanSchedule: recoveryPlanSchedule
    alertsTopicEndpoint: alertsEnabled ? alertsSender.outputs.endpoint : ''
    retentionSchedule: retentionSchedule
    retentionDryRun: retentionDryRun
    backupNow: backupNow
    authTenantId: empty(authTenantId) ? tenant().tenantId : authTenantId
    authClientId: authClientId
    authAllowedAudiences: authAllowedAudiences
    isolatedSubscription: isolatedSubscriptionId
    isolatedResourceGroup: isolatedEnabled ? isolatedResourceGroupName : ''
    isolatedIdentityId: isolatedEnabled ? isolatedIdentity.outputs.resourceId : ''
    isolatedIdentityClientId: isolatedEnabled ? isolatedIdentity.outputs.clientId : ''
  }
}

// Alerts: vmkeeper's own custom topic (unless an existing one is given), the EventGrid Data Sender role for the
// identity on whichever topic is used, and an operator's optional webhook subscription (infra/README.md, "Alerts").
module alertsTopic 'alerts/topic.bicep' = if (createAlertsTopic) {
  name: 'alerts-topic'
  scope: rg
  params: {
    name: alertsTopicName
    location: location
    tags: tags
    identityId: identity.outputs.resourceId
    publicNetworkAccess: alertsPublicNetworkAccess
    workspaceId: logAnalytics.outputs.resourceId
  }
}

module alertsSender 'alerts/data-sender.bicep' = if (alertsEnabled) {
  name: 'alerts-data-sender-${resourceToken}'
  scope: resourceGroup(split(alertsTopicId, '/')[2], split(alertsTopicId, '/')[4])
  dependsOn: [
    alertsTopic
  ]
  params: {
    topicName: last(split(alertsTopicId, '/'))
    principalId: identity.outputs.principalId
  }
}

// Only on the topic vmkeeper makes: it has the identity the dead letters are written with.
module alertsWebhook 'alerts/webhook-subscription.bicep' = if (createAlertsTopic && !empty(alertWebhookUrl)) {
  name: 'alerts-webhook'
  scope: rg
  dependsOn: [
    alertsTopic
  ]
  params: {
    topicName: alertsTopicName
    webhookUrl: alertWebhookUrl
    identityId: identity.outputs.resourceId
    storageAccountId: storage.outputs.id
    deadLetterContainerName: deadLetterContainerName
  }
}

// Least privilege: one custom role (its permissions: infra/vmkeeper-role.json), assignable in every protected
// subscription and this one (the vaults), assigned to the identity in each.
module role 'security/role-definition.bicep' = {
  name: 'role-definition'
  params: {
    environmentName: environmentName
    assignableScopes: map(union(subscriptionIds, [
      subscription().subscriptionId
    ]), s => '/subscriptions/${s}')
  }
}

module roleAssignments 'security/role-assignment.bicep' = [for sub in subscriptionIds: {
  name: 'vmkeeper-role-${sub}-${resourceToken}'
  scope: subscription(sub)
  params: {
    roleDefinitionName: role.outputs.roleDefinitionName
    principalId: identity.outputs.principalId
  }
}]

// The vaults' resource group (only when this subscription is not protected: there the subscription-wide
// assignment covers it).
module vaultRoleAssignment 'security/role-assignment-rg.bicep' = if (!contains(subscriptionIds, subscription().subscriptionId)) {
  name: 'role-assignment-vaults'
  scope: rg
  params: {
    roleDefinitionName: role.outputs.roleDefinitionName
    principalId: identity.outputs.principalId
  }
}

// --- Restores from Azure Backup recovery points: the staging storage accounts -----------------------------
// Azure Backup checks Microsoft.Storage/storageAccounts/write on the caller for the staging storage account a restore
// names (Learn, backup-rbac-rs-vault, "Restore managed disks from VM backup"; without it the restore is refused with
// 403 LinkedAuthorizationFailed). That one action is a role of its own (infra/vmkeeper-staging-role.json), assigned
// at each staging account listed here and nowhere else: never at a subscription or a group.
@description('Storage accounts (resource ids) that restores from Azure Backup recovery points stage in: a restore request\'s target.staging_storage_account must be one of them. Each must exist. Empty: none (Azure Backup refuses such restores).')
param restoreStagingAccountIds array = []

var stagingRoleName = guid(subscription().id, environmentName, 'vmkeeper-staging-role')

module stagingRole 'security/staging-role-definition.bicep' = if (!empty(restoreStagingAccountIds)) {
  name: 'staging-role-definition'
  params: {
    name: stagingRoleName
    environmentName: environmentName
    assignableScopes: map(union(map(restoreStagingAccountIds, a => toLower(split(a, '/')[2])), [
      subscription().subscriptionId
    ]), s => '/subscriptions/${s}')
  }
}

module stagingRoleAssignments 'security/role-assignment-storage.bicep' = [for (account, i) in restoreStagingAccountIds: {
  name: 'vmkeeper-staging-${i}-${resourceToken}'
  scope: resourceGroup(split(account, '/')[2], split(account, '/')[4])
  dependsOn: [
    stagingRole
  ]
  params: {
    roleDefinitionName: stagingRoleName
    principalId: identity.outputs.principalId
    storageAccountName: last(split(account, '/'))
  }
}]
// --- end of the staging storage accounts ---------------------------------------------------------------

// --- Isolated copies (docs/isolated-copies.md): a backup subscription, a second identity -----------------------
// The second identity pulls copies of completed snapshot sets into the backup subscription's group: its role there
// (infra/vmkeeper-isolated-role.json) and, in each protected subscription, only reading the sets it copies
// (infra/vmkeeper-isolated-source-role.json). The app's own identity only reads the copies there
// (isolatedReader: infra/vmkeeper-isolated-reader-role.json, restores from them), never writes or deletes one.
@description('Isolated copies: the backup subscription (same tenant, not a protected one) the second identity copies snapshot sets into (VMKEEPER_ISOLATED_SUBSCRIPTION). Empty: no isolated copies, no second identity.')
param isolatedSubscriptionId string = ''

@description('Isolated copies: the resource group in the backup subscription that holds the copies (made if missing).')
param isolatedResourceGroupName string = 'rg-vmkeeper-isolated'

var isolatedEnabled = !empty(isolatedSubscriptionId)

module isolatedIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = if (isolatedEnabled) {
  name: 'isolated-identity'
  scope: rg
  params: {
    name: 'id-vmkeeper-isolated-${resourceToken}'
    location: location
    tags: tags
  }
}

module isolated 'security/isolated.bicep' = if (isolatedEnabled) {
  name: 'vmkeeper-isolated-${resourceToken}'
  scope: subscription(isolatedEnabled ? isolatedSubscriptionId : subscription().subscriptionId)
  params: {
    environmentName: environmentName
    resourceGroupName: isolatedResourceGroupName
    location: location
    tags: tags
    principalId: isolatedEnabled ? isolatedIdentity.outputs.principalId : ''
  }
}

module isolatedReader 'security/isolated-reader.bicep' = if (isolatedEnabled) {
  name: 'vmkeeper-isolated-reader-${resourceToken}'
  scope: subscription(isolatedEnabled ? isolatedSubscriptionId : subscription().subscriptionId)
  dependsOn: [isolated]
  params: {
    environmentName: environmentName
    resourceGroupName: isolatedResourceGroupName
    principalId: identity.outputs.principalId
  }
}

module isolatedSourceRole 'security/isolated-source-role-definition.bicep' = if (isolatedEnabled) {
  name: 'isolated-source-role-definition'
  params: {
    environmentName: environmentName
    assignableScopes: map(union(subscriptionIds, [
      subscription().subscriptionId
    ]), s => '/subscriptions/${s}')
  }
}

module isolatedSourceAssignments 'security/role-assignment.bicep' = [for sub in (isolatedEnabled ? subscriptionIds : []): {
  name: 'vmkeeper-isolated-source-${sub}-${resourceToken}'
  scope: subscription(sub)
  params: {
    roleDefinitionName: isolatedEnabled ? isolatedSourceRole.outputs.roleDefinitionName : ''
    principalId: isolatedEnabled ? isolatedIdentity.outputs.principalId : ''
  }
}]
// --- end of isolated copies ----------------------------------------------------------------------------------

// Event Grid: a Microsoft.Resources.Subscriptions system topic in each protected subscription that has none.
// Their event subscriptions are made by the postdeploy hook, once vm_events exists (infra/hooks/postdeploy.py).
module topics 'eventgrid/subscription-topic.bicep' = [for sub in newTopicSubscriptionIds: {
  name: 'vmkeeper-events-${sub}-${resourceToken}'
  scope: subscription(sub)
  params: {
    resourceGroupName: eventsResourceGroupName
    location: location
    topicName: systemTopicName
    identityId: identity.outputs.resourceId
    tags: tags
  }
}]

var newTopicIds = map(newTopicSubscriptionIds, s => '/subscriptions/${s}/resourceGroups/${eventsResourceGroupName}/providers/Microsoft.EventGrid/systemTopics/${systemTopicName}')

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = app.outputs.name
output AZURE_FUNCTION_APP_ID string = app.outputs.id
output AZURE_IDENTITY_ID string = identity.outputs.resourceId
output AZURE_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_STORAGE_ACCOUNT_ID string = storage.outputs.id
output EVENTGRID_DEADLETTER_CONTAINER string = deadLetterContainerName
output EVENTGRID_SYSTEM_TOPIC_IDS array = concat(newTopicIds, map(items(existingSystemTopicIds), t => t.value))
output VAULT_IDS object = vaultIds
// Site Recovery's cache accounts, source region -> id: a policy's replication.cache_storage_accounts.
output SITE_RECOVERY_CACHE_ACCOUNT_IDS object = toObject(drSourceRegions, r => r, r => '/subscriptions/${subscription().subscriptionId}/resourceGroups/${resourceGroupName}/providers/Microsoft.Storage/storageAccounts/${cacheAccountNames[r]}')
output ALERTS_TOPIC_ID string = alertsEnabled ? alertsTopicId : ''
output ALERTS_TOPIC_ENDPOINT string = alertsEnabled ? alertsSender.outputs.endpoint : ''

// For the hooks (infra/hooks): the cloud to sign in to, and what vmkeeper makes outside rg-<env>, which azd down does
// not delete (rg-<env> is the group it deletes): the teardown deletes each of these by its id. Every output named
// VMKEEPER_…ROLE_ASSIGNMENT_ID(S) / VMKEEPER_…ROLE_DEFINITION_ID(S) is read (tests/infra/test_hooks.py: every role
// assignment or definition outside rg-<env> is in one).
output AZURE_RESOURCE_MANAGER_ENDPOINT string = environment().resourceManager
output AZURE_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output VMKEEPER_EVENTS_RESOURCE_GROUP_IDS array = map(newTopicSubscriptionIds, s => '/subscriptions/${s}/resourceGroups/${eventsResourceGroupName}')
output VMKEEPER_ROLE_DEFINITION_IDS array = [
  role.outputs.id
]
output VMKEEPER_ROLE_ASSIGNMENT_IDS array = [for (sub, i) in subscriptionIds: roleAssignments[i].outputs.id]
output VMKEEPER_STAGING_ROLE_DEFINITION_IDS array = empty(restoreStagingAccountIds) ? [] : [
  stagingRole.outputs.id
]
output VMKEEPER_STAGING_ROLE_ASSIGNMENT_IDS array = [for (account, i) in restoreStagingAccountIds: stagingRoleAssignments[i].outputs.id]
output VMKEEPER_ALERTS_ROLE_ASSIGNMENT_ID string = (alertsEnabled && !empty(existingAlertsTopicId)) ? alertsSender.outputs.assignmentId : ''
output VMKEEPER_ISOLATED_ROLE_DEFINITION_IDS array = isolatedEnabled ? [
  isolated.outputs.roleDefinitionId
  isolatedReader.outputs.roleDefinitionId
  isolatedSourceRole.outputs.id
] : []
output VMKEEPER_ISOLATED_ROLE_ASSIGNMENT_IDS array = isolatedEnabled ? concat([
  isolated.outputs.roleAssignmentId
  isolatedReader.outputs.roleAssignmentId
], map(range(0, length(subscriptionIds)), i => isolatedSourceAssignments[i].outputs.id)) : []

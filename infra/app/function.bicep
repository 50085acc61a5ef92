// The function app on Flex Consumption: Python 3.11, the package in a blob container reached with the
// user-assigned identity, identity-based AzureWebJobsStorage, and the app settings the code reads.
param name string
param location string
param tags object = {}
param planId string
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param appInsightsConnectionString string

@description('Log Analytics workspace the app\'s resource logs (FunctionAppLogs) go to.')
param workspaceId string
param maximumInstanceCount int
param instanceMemoryMB int

@description('Queue names: protect, jobs, restores (main.bicep).')
param queues object

@description('Table names: protect, ledger, budget, restores, alerts, failovers, cost (main.bicep).')
param tables object

@description('VMKEEPER_VAULTS: JSON object region -> Recovery Services vault id.')
param vaults string

@description('VMKEEPER_SUBSCRIPTIONS: comma-separated subscription ids.')
param subscriptions string

@description('VMKEEPER_RESTORE_SCOPES: comma-separated subscription and resource group ids.')
param restoreScopes string

@description('VMKEEPER_RESTORE_STAGING_ACCOUNTS: comma-separated ids of the storage accounts the staging role is assigned on.')
param restoreStagingAccounts string

param schedule string
param complianceSchedule string
param costSchedule string
param drillSchedule string
param replicationSchedule string
param protectSchedule string
param recoveryPlanSchedule string
param retentionSchedule string
param retentionDryRun bool
param backupNow bool

@description('VMKEEPER_ALERTS_TOPIC_ENDPOINT: the alerts topic\'s properties.endpoint. Empty: alerts recorded, not published.')
param alertsTopicEndpoint string

@description('Isolated copies (docs/isolated-copies.md): the backup subscription and group, and the second identity (its resource id: attached to the app; its client id: VMKEEPER_ISOLATED_IDENTITY_CLIENT_ID). All empty: none.')
param isolatedSubscription string = ''
param isolatedResourceGroup string = ''
param isolatedIdentityId string = ''
param isolatedIdentityClientId string = ''

@description('App Service authentication (restore API): only set up when authClientId is given.')
param authTenantId string
param authClientId string
param authAllowedAudiences array

// policies.json at the repository root is deployed with the code (.funcignore ships it). Relative: the code finds
// it next to function_app.py (shared/settings.py APP_ROOT), wherever Flex Consumption mounts the package.
var policyFile = 'policies.json'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'vmkeeper'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    // The second identity (isolated copies) too, when there is one: the app asks tokens for it by its client id.
    userAssignedIdentities: union({
      '${identityId}': {}
    }, empty(isolatedIdentityId) ? {} : {
      '${isolatedIdentityId}': {}
    })
  }
  properties: {
    serverFarmId: planId
    httpsOnly: true
    // Nothing Flex Consumption rejects (ftpsState, alwaysOn, linuxFxVersion…: tests/infra/test_flex.py).
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${account.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Every setting the code reads (shared/settings.py) and the platform's own; nothing else (tests/infra checks
// both ways). VMKEEPER_ARM_CA_BUNDLE is for local development only (the emulator's CA): never here.
// Storage by the account's own endpoints, not __accountName: from a name the host and the code would assume the
// public cloud's core.windows.net; these are right in every cloud, as is this cloud's Resource Manager.
var appSettings = {
  AzureWebJobsStorage__blobServiceUri: account.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: account.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: account.properties.primaryEndpoints.table
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AZURE_CLIENT_ID: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  VMKEEPER_ARM_ENDPOINT: environment().resourceManager
  VMKEEPER_SUBSCRIPTIONS: subscriptions
  VMKEEPER_VAULTS: vaults
  VMKEEPER_POLICY_FILE: policyFile
  VMKEEPER_BACKUP_NOW: string(backupNow)
  VMKEEPER_STOP_PROTECTION_ON_DELETE: 'true'
  VMKEEPER_PROTECT_QUEUE: queues.protect
  VMKEEPER_PROTECT_TABLE: tables.protect
  VMKEEPER_PROTECT_RETRY_SECONDS: '10'
  VMKEEPER_PROTECT_RETRY_MAX_SECONDS: '300'
  VMKEEPER_PROTECT_MAX_ATTEMPTS: '12'
  VMKEEPER_SCHEDULE: schedule
  VMKEEPER_JOBS_QUEUE: queues.jobs
  VMKEEPER_COPY_TIMEOUT_HOURS: '24'
  VMKEEPER_WRITES_PER_SECOND: '8'
  VMKEEPER_WRITE_BURST: '150'
  VMKEEPER_RETENTION_SCHEDULE: retentionSchedule
  VMKEEPER_RETENTION_DRY_RUN: string(retentionDryRun)
  VMKEEPER_DELETES_PER_SECOND: '8'
  VMKEEPER_DELETE_BURST: '150'
  VMKEEPER_LEDGER_TABLE: tables.ledger
  VMKEEPER_BUDGET_TABLE: tables.budget
  VMKEEPER_RESTORE_SCOPES: restoreScopes
  VMKEEPER_RESTORE_STAGING_ACCOUNTS: restoreStagingAccounts
  VMKEEPER_RESTORE_QUEUE: queues.restores
  VMKEEPER_RESTORE_TABLE: tables.restores
  VMKEEPER_COMPLIANCE_SCHEDULE: complianceSchedule
  VMKEEPER_ALERTS_TOPIC_ENDPOINT: alertsTopicEndpoint
  VMKEEPER_ALERTS_TABLE: tables.alerts
  VMKEEPER_DRILL_SCHEDULE: drillSchedule
  VMKEEPER_DRILL_QUEUE: queues.drills
  VMKEEPER_REPLICATION_SCHEDULE: replicationSchedule
  VMKEEPER_PROTECT_SCHEDULE: protectSchedule
  VMKEEPER_PROTECT_SWEEP_RETRY_HOURS: '24'
  VMKEEPER_PROTECT_SWEEP_RECHECK_HOURS: '24'
  VMKEEPER_REPLICATION_QUEUE: queues.replication
  VMKEEPER_REPLICATION_RETRY_SECONDS: '15'
  VMKEEPER_REPLICATION_RETRY_MAX_SECONDS: '600'
  VMKEEPER_REPLICATION_MAX_ATTEMPTS: '40'
  VMKEEPER_REPLICATION_TIMEOUT_HOURS: '72'
  VMKEEPER_FAILOVER_QUEUE: queues.failovers
  VMKEEPER_FAILOVER_TABLE: tables.failovers
  VMKEEPER_RECOVERY_PLAN_SCHEDULE: recoveryPlanSchedule
  VMKEEPER_COST_SCHEDULE: costSchedule
  VMKEEPER_COST_TABLE: tables.cost
  VMKEEPER_COST_DATA_LAG_HOURS: '24'
  VMKEEPER_RETAIL_PRICES_URL: 'https://prices.azure.com/api/retail/prices'
  VMKEEPER_ISOLATED_SUBSCRIPTION: isolatedSubscription
  VMKEEPER_ISOLATED_RESOURCE_GROUP: isolatedResourceGroup
  VMKEEPER_ISOLATED_IDENTITY_CLIENT_ID: isolatedIdentityClientId
}

// No publishing with a user name and password: neither FTP nor the scm (Kudu) endpoints take the publishing
// credentials; azd deploys the package with Microsoft Entra ID. The type does not declare location, but ARM refuses
// these policies without one (Azure/bicep-types-az#1317, #1529).
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  location: location
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  location: location
  properties: {
    allow: false
  }
}

// The host's and functions' logs (FunctionAppLogs) and the platform metrics, in the workspace.
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'vmkeeper-to-log-analytics'
  scope: site
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'FunctionAppLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: appSettings
}

// The restore API's callers: Microsoft Entra ID tokens, validated by App Service; the app reads the caller's
// app roles (Restore.Reader, Restore.Operator) from X-MS-CLIENT-PRINCIPAL. Health and the OpenAPI document
// stay open, and so does the Event Grid extension's webhook: Event Grid delivers vm_events' events there without
// a token (the extension's system key protects it; Learn spells the path both ways). Everything else without a
// token gets 401.
resource auth 'Microsoft.Web/sites/config@2024-04-01' = if (!empty(authClientId)) {
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: [
        '/api/health'
        '/api/openapi.json'
        '/runtime/webhooks/EventGrid'
        '/runtime/webhooks/eventgrid'
      ]
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: authClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${authTenantId}/v2.0'
        }
        validation: {
          allowedAudiences: empty(authAllowedAudiences) ? [
            'api://${authClientId}'
          ] : authAllowedAudiences
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

output name string = site.name
output id string = site.id
output hostName string = site.properties.defaultHostName

// Flex Consumption (FC1) plan and the Python 3.11 function app. The app runs as the
// user-assigned managed identity only: the deployment package, AzureWebJobsStorage,
// Application Insights and Key Vault references all authenticate with it.
//
// Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION and
// the content-share settings as app settings: the runtime is set in functionAppConfig.

param name string
param planName string
param location string
param tags object = {}

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity (AZURE_CLIENT_ID).')
param identityClientId string

param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string

@description('Vault URI, e.g. https://kv-name.vault.azure.net/ (KEY_VAULT_URL).')
param keyVaultUri string

@description('Versionless SecretUri of the alert webhook secret, or empty when there is none.')
param alertWebhookSecretUri string = ''

@description('Service name azd deploys to (tag azd-service-name).')
param azdServiceName string = 'api'

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// Service settings whose production value may differ per environment. The defaults
// equal core.settings.SETTINGS; tests/infra checks the names against it.
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'
param secretPrefix string = 'nylas-entra-'
param rotationSchedule string = '0 0 2 * * *'
param rotationWindow string = ''
param rotationQueueName string = 'rotation-requests'
param leaseContainerName string = 'rotation-leases'
param defaultSecretLifetimeDays string = '730'
param defaultRotateBeforeDays string = '30'

@allowed([
  'generic'
  'teams'
  'slack'
])
param alertWebhookKind string = 'generic'

// Caller sign-in (CALLER_AUTH=entra): callers present an Entra access token for the service's
// own API registration (api-registration.bicep).
@description('Audiences the API accepts, comma-separated: the client id and/or Application ID URI of the service\'s API app registration. Required with CALLER_AUTH=entra: the app refuses to start without it.')
param callerAuthAudience string = ''

@description('Entra tenant whose tokens the API accepts. Empty: this deployment\'s tenant.')
param callerAuthTenantId string = ''

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': azdServiceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references (ALERT_WEBHOOK_URL) resolve with the user-assigned identity.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
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

  // Exactly the names in core.settings.SETTINGS plus the host's own settings (identity-based
  // storage, Application Insights, PYTHON_ENABLE_OPENTELEMETRY) and the caller sign-in
  // settings (tests/infra/test_infra_bicep.py keeps them equal). Keep this a literal object:
  // the test reads the names from it.
  resource appSettings 'config' = {
    name: 'appsettings'
    properties: {
      // Functions host: identity-based AzureWebJobsStorage (no connection string, no key).
      AzureWebJobsStorage__accountName: storage.name
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      // Application Insights with Entra ID auth (local auth is disabled on the component;
      // the connection string holds only the ingestion endpoint and component id).
      APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      // The Python worker's OpenTelemetry mode; the app itself calls configure_azure_monitor
      // (when APPLICATIONINSIGHTS_CONNECTION_STRING is set), so its OpenTelemetry metrics reach
      // customMetrics, which the alert rules and the workbook read.
      PYTHON_ENABLE_OPENTELEMETRY: 'true'

      // Service settings (core.settings.SETTINGS).
      AZURE_TENANT_ID: tenant().tenantId
      AZURE_CLIENT_ID: identityClientId
      // Local runs only: production uses the managed identity, so no secret.
      AZURE_CLIENT_SECRET: ''
      AZURE_AUTHORITY_HOST: environment().authentication.loginEndpoint
      GRAPH_BASE_URL: graphBaseUrl
      KEY_VAULT_URL: keyVaultUri
      KEY_VAULT_VERIFY_CHALLENGE_RESOURCE: 'true'
      // Local runs only: production trusts the system CA store.
      CA_BUNDLE: ''
      SECRET_PREFIX: secretPrefix
      PERMISSION_MANIFEST_PATH: ''
      DEFAULT_SECRET_LIFETIME_DAYS: defaultSecretLifetimeDays
      DEFAULT_ROTATE_BEFORE_DAYS: defaultRotateBeforeDays
      ROTATION_SCHEDULE: rotationSchedule
      ROTATION_WINDOW: rotationWindow
      ROTATION_QUEUE: rotationQueueName
      LEASE_CONTAINER: leaseContainerName
      LEASE_SECONDS: '30'
      VERIFY_BUDGET_SECONDS: '300'
      STUCK_AFTER_HOURS: '6'
      ORPHAN_GRACE_MINUTES: '60'
      MANUAL_ESCALATE_DAYS: '7'
      // Sensitive: a Key Vault reference, never the URL itself.
      ALERT_WEBHOOK_URL: empty(alertWebhookSecretUri) ? '' : '@Microsoft.KeyVault(SecretUri=${alertWebhookSecretUri})'
      ALERT_WEBHOOK_KIND: alertWebhookKind
      NYLAS_V3_API_US: 'https://api.us.nylas.com'
      NYLAS_V3_API_EU: 'https://api.eu.nylas.com'
      NYLAS_V2_API_US: 'https://beta.us.nylas.com'
      NYLAS_V2_API_EU: 'https://beta.eu.nylas.com'
      // Graph allows 60 writes a minute to personal-account apps: rotations of those are paced.
      GRAPH_WRITES_PER_MINUTE: '55'
      HTTP_TIMEOUT_SECONDS: '30'
      HTTP_MAX_RETRIES: '3'
      HTTP_RETRY_BASE_SECONDS: '1'
      // Prefix of the storage settings the code reads: the host's AzureWebJobsStorage__*.
      STORAGE_CONNECTION: 'AzureWebJobsStorage'
      // Caller sign-in: Entra access tokens for the service's API, with its app roles.
      CALLER_AUTH: 'entra'
      CALLER_AUTH_AUDIENCE: callerAuthAudience
      CALLER_AUTH_TENANT_ID: empty(callerAuthTenantId) ? tenant().tenantId : callerAuthTenantId
    }
  }
}

// No FTP and no basic-auth publishing: azd deploys with an Entra token.
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName

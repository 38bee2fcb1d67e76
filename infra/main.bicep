// Nylas Entra app-registration rotator: everything `azd provision` creates.
// The Event Grid subscription to the on_key_vault_event function lives in
// eventgrid.bicep, deployed by the postdeploy hook once the code (and so the
// function) exists.

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; part of every resource name.')
param environmentName string

@minLength(1)
@description('Region of all resources. Must offer the Flex Consumption plan.')
param location string

@description('Resource group name; empty: rg-<environmentName>.')
param resourceGroupName string = ''

@secure()
@description('Alert webhook URL (Teams, Slack or generic). Stored in Key Vault and referenced, never set as plain text. Empty: alerts are only logged.')
param alertWebhookUrl string = ''

@allowed([
  'generic'
  'teams'
  'slack'
])
param alertWebhookKind string = 'generic'

@description('Grant the managed identity the Microsoft Graph application permission Application.ReadWrite.OwnedBy. Needs a Privileged Role Administrator or Global Administrator to deploy; set false and grant it by hand otherwise (docs/deploy.md).')
param grantGraphPermission bool = true

@description('NCRONTAB schedule (UTC) of the nightly scan.')
param rotationSchedule string = '0 0 2 * * *'

@description('When unattended rotations may start (UTC), e.g. Mon-Fri 02:00-04:00; empty: whenever the scan runs.')
param rotationWindow string = ''

@description('Prefix of the Key Vault secret names the service owns.')
param secretPrefix string = 'nylas-entra-'

@description('Microsoft Graph base URL (change only for a national cloud).')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

@description('Lifetime in days of a new client secret when a tenant does not say.')
param defaultSecretLifetimeDays string = '730'

@description('Rotate this many days before expiry when a tenant does not say.')
param defaultRotateBeforeDays string = '30'

// Monitoring and alerts that do not depend on the app (modules/alerts.bicep).
@description('Comma-separated email addresses the Azure Monitor action group notifies. Empty: none.')
param alertEmails string = ''

@secure()
@description('HTTPS endpoint for the Azure Monitor action group (common alert schema: a Logic App, an incident tool). Not ALERT_WEBHOOK_URL: Teams and Slack incoming webhooks reject that payload, and an action group stores the URL readable by anyone with Reader. Empty: no webhook receiver.')
param alertActionGroupWebhookUrl string = ''

@minValue(1)
@maxValue(365)
@description('The "low days left" alert fires for a tenant whose live secret has fewer days than this.')
param daysLeftAlertThreshold int = 14

// Caller sign-in (CALLER_AUTH=entra).
@description('Create the service\'s API app registration (modules/api-registration.bicep) with the Microsoft Graph Bicep extension. Needs a deploying user allowed to register applications; set false and give callerAuthAudience otherwise.')
param deployApiRegistration bool = true

@description('Audiences callers\' tokens may carry, comma-separated (the API registration\'s client id and/or Application ID URI). Empty: those of the registration this template creates.')
param callerAuthAudience string = ''

@description('Entra tenant whose callers are accepted. Empty: this deployment\'s tenant.')
param callerAuthTenantId string = ''

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

// Names the code also uses: keep in step with core.settings.SETTINGS and the triggers.
var rotationQueueName = 'rotation-requests'
var leaseContainerName = 'rotation-leases'
var deploymentContainerName = 'app-package'
var deadLetterContainerName = 'eventgrid-deadletter'
var functionAppName = 'func-${resourceToken}'

var alertEmailList = filter(map(split(alertEmails, ','), address => trim(address)), address => !empty(address))
// api://<tenantId>/<string>: a format Entra accepts without a verified domain, and stable for
// the environment (same subscription, environment name and region).
var apiIdentifierUri = 'api://${tenant().tenantId}/nylas-entra-rotator-${resourceToken}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    appPrincipalId: identity.outputs.principalId
    deploymentContainerName: deploymentContainerName
    leaseContainerName: leaseContainerName
    rotationQueueName: rotationQueueName
    deadLetterContainerName: deadLetterContainerName
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    appPrincipalId: identity.outputs.principalId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    appPrincipalId: identity.outputs.principalId
    alertWebhookUrl: alertWebhookUrl
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultUri: keyVault.outputs.uri
    alertWebhookSecretUri: empty(alertWebhookUrl) ? '' : keyVault.outputs.alertWebhookReferenceUri
    alertWebhookKind: alertWebhookKind
    graphBaseUrl: graphBaseUrl
    secretPrefix: secretPrefix
    rotationSchedule: rotationSchedule
    rotationQueueName: storage.outputs.rotationQueueName
    leaseContainerName: storage.outputs.leaseContainerName
    defaultSecretLifetimeDays: defaultSecretLifetimeDays
    defaultRotateBeforeDays: defaultRotateBeforeDays
    rotationWindow: rotationWindow
    // Both forms of the API's audience: its client id (the `aud` of the v2.0 tokens it asks for)
    // and its Application ID URI.
    callerAuthAudience: empty(callerAuthAudience) ? (deployApiRegistration ? '${apiRegistration.outputs.appId},${apiIdentifierUri}' : '') : callerAuthAudience
    callerAuthTenantId: callerAuthTenantId
  }
}

module apiRegistration 'modules/api-registration.bicep' = if (deployApiRegistration) {
  name: 'api-registration'
  scope: rg
  params: {
    uniqueName: 'nylas-entra-rotator-api-${resourceToken}'
    displayName: 'Nylas Entra rotator API (${environmentName})'
    identifierUri: apiIdentifierUri
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    nameSuffix: resourceToken
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    emailAddresses: alertEmailList
    webhookUrl: alertActionGroupWebhookUrl
    daysLeftThreshold: daysLeftAlertThreshold
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    daysLeftThreshold: daysLeftAlertThreshold
    rotateBeforeDays: int(defaultRotateBeforeDays)
  }
}

module graphPermission 'modules/graph-permission.bicep' = if (grantGraphPermission) {
  name: 'graph-permission'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
  }
}

// azd stores these in the environment (.azure/<env>/.env); the postdeploy hook reads them.
// Names and ids only: nothing secret.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URL string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output EVENT_GRID_DEAD_LETTER_CONTAINER string = storage.outputs.deadLetterContainerName
output SERVICE_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output SERVICE_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output SECRET_PREFIX string = secretPrefix
output ALERTS_ACTION_GROUP_NAME string = alerts.outputs.actionGroupName
output MONITORING_WORKBOOK_ID string = workbook.outputs.workbookId
// Not named CALLER_AUTH_AUDIENCE: azd would feed an output of that name back into the
// callerAuthAudience parameter on the next provision.
output API_APP_ID string = deployApiRegistration ? apiRegistration.outputs.appId : ''
output API_IDENTIFIER_URI string = deployApiRegistration ? apiIdentifierUri : ''

// Key Vault: the source of truth for the Nylas client secrets (names start with
// SECRET_PREFIX) and the home of the alert webhook URL. RBAC authorization only (no
// access policies), soft delete and purge protection on.

param name string
param location string
param tags object = {}

@description('Principal (object) id of the app identity.')
param appPrincipalId string

@secure()
@description('Alert webhook URL. Empty: no secret is written and ALERT_WEBHOOK_URL stays empty (alerts are only logged).')
param alertWebhookUrl string = ''

@description('Name of the Key Vault secret holding the alert webhook URL. Must not start with SECRET_PREFIX: the service owns those names.')
param alertWebhookSecretName string = 'alert-webhook-url'

@description('Days deleted vault objects are kept before they can be purged.')
param softDeleteRetentionInDays int = 90

// Key Vault Secrets Officer: the service creates, reads, updates (new versions,
// attributes) and deletes the Nylas client secrets it rotates; the Functions platform
// also reads the alert webhook secret through this identity (Key Vault reference).
var keyVaultSecretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

// Written only when a URL is given; the function app then references it by a
// versionless SecretUri, so a new version set by hand is picked up without redeploying.
resource alertWebhookSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(alertWebhookUrl)) {
  parent: vault
  name: alertWebhookSecretName
  properties: {
    value: alertWebhookUrl
    contentType: 'text/uri-list'
  }
}

// Scoped to this vault only.
resource secretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, keyVaultSecretsOfficerRoleId)
  scope: vault
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficerRoleId)
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
// A location, not a value: the versionless URI the function app's Key Vault reference
// points at. main.bicep uses it only when a webhook URL was given.
output alertWebhookReferenceUri string = '${vault.properties.vaultUri}secrets/${alertWebhookSecretName}'

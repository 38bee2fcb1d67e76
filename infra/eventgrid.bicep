// Key Vault -> Event Grid -> the on_key_vault_event function.
//
// Deployed by infra/hooks/postdeploy.{sh,ps1} AFTER `azd deploy`: an AzureFunction
// endpoint is validated when the subscription is created, so the function must
// already be deployed and indexed. Re-running it is idempotent.
//
//   az deployment group create -g <rg> -f infra/eventgrid.bicep \
//     -p keyVaultName=<kv> functionAppName=<func> storageAccountName=<st>

targetScope = 'resourceGroup'

param keyVaultName string
param functionAppName string
param storageAccountName string

@description('Blob container (created by main.bicep) that receives undeliverable events.')
param deadLetterContainerName string = 'eventgrid-deadletter'

@description('Name of the Event Grid triggered function (v2 programming model function name).')
param functionName string = 'on_key_vault_event'

@description('Only secrets whose name starts with this prefix (SECRET_PREFIX) are delivered.')
param secretPrefix string = 'nylas-entra-'

@minValue(1)
@maxValue(30)
@description('Delivery attempts before an event is dead-lettered.')
param maxDeliveryAttempts int = 30

@minValue(1)
@maxValue(1440)
@description('Minutes an undelivered event is retried before it is dead-lettered.')
param eventTimeToLiveInMinutes int = 1440

param tags object = {}

// Storage Blob Data Contributor: Event Grid writes dead-lettered events as blobs.
var storageBlobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

// Only its id is used (no GET): Event Grid itself rejects the subscription if the
// function is not deployed and indexed yet, which is why the hook waits for it.
resource onKeyVaultEvent 'Microsoft.Web/sites/functions@2024-04-01' existing = {
  parent: site
  name: functionName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deadLetterContainerName
}

// A vault has at most one system topic; it lives in the vault's region. Its
// system-assigned identity writes dead letters (the storage account has no keys).
resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: '${keyVaultName}-events'
  location: vault.location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: vault.id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

// Scoped to the dead-letter container only, not the account.
resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, systemTopic.id, storageBlobDataContributorRoleId)
  scope: deadLetterContainer
  properties: {
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
  }
}

resource expiryToFunction 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: systemTopic
  name: 'secret-expiry-to-function'
  dependsOn: [
    deadLetterWriter
  ]
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: onKeyVaultEvent.id
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.KeyVault.SecretNearExpiry'
        'Microsoft.KeyVault.SecretExpired'
      ]
      // The subject of a Key Vault event is the secret name.
      subjectBeginsWith: secretPrefix
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainer.name
        }
      }
    }
  }
}

output systemTopicName string = systemTopic.name
output eventSubscriptionName string = expiryToFunction.name

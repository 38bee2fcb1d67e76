// The one storage account: AzureWebJobsStorage for the Functions host, the Flex
// Consumption deployment package container, the per-tenant lease blobs, the rotation
// queue, and the Event Grid dead-letter container. Shared key access is disabled, so
// every caller authenticates with Entra ID; nothing here reads or outputs a key.

param name string
param location string
param tags object = {}

@description('Principal (object) id of the app identity.')
param appPrincipalId string

@description('Blob container holding the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Blob container holding one lease blob per tenant (LEASE_CONTAINER).')
param leaseContainerName string

@description('Storage queue of rotation requests (ROTATION_QUEUE, and the queue trigger).')
param rotationQueueName string

@description('Blob container receiving Event Grid dead-lettered events.')
param deadLetterContainerName string

// Built-in role definition ids (the same in every tenant).
var roles = {
  // Storage Blob Data Owner. Microsoft's documented role for an identity-based
  // AzureWebJobsStorage: the host keeps its locks (singleton/timer schedule monitor),
  // function keys (azure-webjobs-secrets) and host ids in blobs and creates its own
  // containers; the Flex platform reads the deployment package from the deployment
  // container with this identity; the code takes, renews and breaks blob leases in
  // the lease container. The Functions docs name Owner (not Contributor) as the role
  // for an identity-based AzureWebJobsStorage, so this follows the docs.
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // Storage Queue Data Contributor. The queue trigger reads, updates and deletes
  // messages on the rotation queue and the host creates the poison queue; the code
  // (timer scan, HTTP triggers) enqueues rotation requests.
  queueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
}
// Not granted, on purpose: Storage Table Data Contributor (used only by Durable
// Functions and some extensions, neither used here), Storage File Data roles (Flex
// Consumption has no content file share), Storage Account Contributor (control plane
// only, and it would allow listing keys if shared key access were ever re-enabled).

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource leaseContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: leaseContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource rotationQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: rotationQueueName
}

// Both assignments are scoped to this storage account only (the host needs
// account-wide data access: it creates containers and queues of its own).
resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.blobDataOwner)
  scope: storage
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataOwner)
  }
}

resource queueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.queueDataContributor)
  scope: storage
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.queueDataContributor)
  }
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output deploymentContainerName string = deploymentContainer.name
output leaseContainerName string = leaseContainer.name
output deadLetterContainerName string = deadLetterContainer.name
output rotationQueueName string = rotationQueue.name

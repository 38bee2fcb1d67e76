// Grants the service's managed identity the Microsoft Graph application permission
// Application.ReadWrite.OwnedBy (an app role assignment on the Microsoft Graph service
// principal). This is tenant-wide admin consent: the identity deploying this module
// needs AppRoleAssignment.ReadWrite.All + Application.Read.All in Microsoft Graph, which
// in practice means a Privileged Role Administrator or Global Administrator. See
// docs/deploy.md for deploying with grantGraphPermission=false and granting it by hand.
//
// Requires infra/bicepconfig.json (extension alias microsoftGraphV1) and Bicep >= 0.36.1.

extension microsoftGraphV1

@description('Object (principal) id of the service principal of the user-assigned managed identity.')
param principalId string

// Well-known application id of Microsoft Graph (the same in every tenant).
var microsoftGraphAppId = '00000003-0000-0000-c000-000000000000'

// App role id of Application.ReadWrite.OwnedBy on Microsoft Graph (the same in every tenant).
var applicationReadWriteOwnedByRoleId = '18a4783c-866b-4cc7-a460-3d5e5662c884'

resource microsoftGraph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: microsoftGraphAppId
}

resource applicationReadWriteOwnedBy 'Microsoft.Graph/appRoleAssignedTo@v1.0' = {
  appRoleId: applicationReadWriteOwnedByRoleId
  principalId: principalId
  resourceId: microsoftGraph.id
}

output appRoleAssignmentId string = applicationReadWriteOwnedBy.id

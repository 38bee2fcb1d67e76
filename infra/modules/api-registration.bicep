// The service's own API as an Entra app registration: what callers sign in to (CALLER_AUTH=entra).
// Callers get an access token for this app and the function app checks its audience
// (CALLER_AUTH_AUDIENCE: this app's appId and Application ID URI), tenant and app roles. People get roles by assignment to
// the service principal (Enterprise applications > the app > Users and groups); other apps get
// them as application permissions (API permissions > this app > Application permissions, then
// admin consent).
//
// Requires infra/bicepconfig.json (extension alias microsoftGraphV1) and Bicep >= 0.36.1. The
// deploying user needs to be allowed to register applications (the Entra default, or the
// Application Developer role): the extension creates it on their behalf.

extension microsoftGraphV1

@description('Stable unique name of the registration (the Graph extension\'s idempotency key).')
param uniqueName string

@description('Display name shown in Entra.')
param displayName string

@description('Application ID URI. Must satisfy the tenant\'s identifier-URI policy: api://<tenantId>/<string> is one of the formats Entra accepts by default.')
param identifierUri string

// Fixed ids: an app role's id must never change once callers hold it (Entra refuses to change or
// remove an enabled role). The values are what the code checks (CALLER_AUTH roles claim).
var appRoles = [
  {
    id: '8ef59f4b-ff27-440f-a45a-efce4b206170'
    value: 'Tenants.Read'
    displayName: 'Read tenants'
    description: 'Read tenants, their state, secrets\' expiry and rotation history (never a secret value).'
    allowedMemberTypes: [
      'User'
      'Application'
    ]
    isEnabled: true
  }
  {
    id: '274524c8-9749-4350-9507-99ce89c4550e'
    value: 'Tenants.Provision'
    displayName: 'Provision, update and retire tenants'
    description: 'Provision new tenants (app registration, secret, Nylas), update them, and retire them.'
    allowedMemberTypes: [
      'User'
      'Application'
    ]
    isEnabled: true
  }
  {
    id: '1b15c9c0-a8a0-412c-9ba5-3626a6ea17eb'
    value: 'Rotations.Operate'
    displayName: 'Operate rotations'
    description: 'Rotate a tenant\'s secret now, and confirm a manual rotation once the new secret is in place.'
    allowedMemberTypes: [
      'User'
      'Application'
    ]
    isEnabled: true
  }
]

resource api 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: 'AzureADMyOrg'
  identifierUris: [
    identifierUri
  ]
  api: {
    // v2 access tokens: `aud` is the appId, the first audience CALLER_AUTH_AUDIENCE lists.
    requestedAccessTokenVersion: 2
  }
  appRoles: appRoles
}

// The service principal is what roles are assigned on, and what issues tokens in this tenant.
resource apiServicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: api.appId
  // Only users and groups assigned a role get a token for the API at all.
  appRoleAssignmentRequired: true
}

output appId string = api.appId
output identifierUri string = identifierUri
output servicePrincipalId string = apiServicePrincipal.id

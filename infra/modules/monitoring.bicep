// Log Analytics workspace + workspace-based Application Insights with local
// (instrumentation-key) auth disabled: telemetry is accepted only with an Entra
// token, so the app identity gets Monitoring Metrics Publisher on the component.

param logAnalyticsName string
param applicationInsightsName string
param location string
param tags object = {}

@description('Principal (object) id of the app identity that sends telemetry.')
param appPrincipalId string

@description('Days to keep logs in the workspace.')
param retentionInDays int = 30

// Monitoring Metrics Publisher: lets the identity ingest telemetry when local auth is off.
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    // "Use resource or workspace permissions" (the default, stated here because two things
    // rely on it): workspace-based Application Insights requires it, and the alert rules'
    // identity reads logs with Monitoring Reader on the component alone (alerts.bicep).
    features: {
      enableLogAccessUsingOnlyResourcePermissions: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

// Scoped to the Application Insights component only.
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, monitoringMetricsPublisherRoleId)
  scope: appInsights
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
  }
}

output applicationInsightsName string = appInsights.name
output logAnalyticsWorkspaceId string = workspace.id

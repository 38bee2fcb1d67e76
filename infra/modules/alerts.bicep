// Alerts that do not depend on the app: Azure Monitor runs these queries over the telemetry
// the app has already exported, on its own schedule, and notifies through its own action
// group. A crashed, stopped, misconfigured or deleted function app cannot silence them: the
// "no successful nightly scan" rule fires precisely when the app says nothing at all.
//
// Where the data is. The app exports OpenTelemetry metrics with azure-monitor-opentelemetry
// (instrument names in core/telemetry.py, METRIC_NAMES). The exporter sends every metric point
// as one row of the Application Insights `customMetrics` table: `name` is the instrument name,
// the attributes are `customDimensions`, and `valueSum` is the point's value: a counter's
// increase since the previous export (the exporter asks for delta temporality), a gauge's
// current value (valueCount 1). A counter series exports no row in an interval without
// increments.
//
// Why the rules are scoped to the Application Insights component and not to the Log Analytics
// workspace: in the component's context the classic table and column names apply
// (customMetrics, customDimensions, valueSum, timestamp); in the workspace's own context the
// same rows are AppMetrics (Properties, Sum, TimeGenerated). Source followed: Microsoft Learn,
// "Migrate to workspace-based Application Insights resources"
// (azure-monitor/app/convert-classic-resource, sections "Understand log queries" — full backward
// compatibility for classic queries, workbooks and log-based alerts within the Application
// Insights experience — and "Table structure"/"AppMetrics": customMetrics -> AppMetrics,
// valueSum -> Sum, customDimensions -> Properties).
//
// Limits followed (Microsoft.Insights/scheduledQueryRules): evaluationFrequency from 1 minute
// to 1 day; windowSize (the query time range) one of 5, 10, 15, 30, 45, 60, 120, 180, 240, 300,
// 360, 1440 or 2880 minutes, so at most P2D (the service's own error text, quoted in
// Azure/azure-rest-api-specs#21258; Learn "Create or edit a log search alert rule": the query
// time range is at most two days, whatever ago() the query holds); stateful rules
// (autoMitigate) need a frequency of 12 hours or less. tests/infra/test_alerts_bicep.py reads
// every query here and checks its metric names and tables against core/telemetry.py.

param location string
param tags object = {}

@description('Suffix of every name in this module (the deployment\'s resource token).')
param nameSuffix string

@description('Name of the Application Insights component the app sends telemetry to.')
param applicationInsightsName string

@description('Email addresses the action group notifies (may be empty).')
param emailAddresses array = []

@secure()
@description('HTTPS endpoint that accepts the Azure Monitor common alert schema (a Logic App, an incident tool, a generic receiver). Empty: no webhook receiver. Stored on the action group, readable by anyone with Reader on the resource group: use a URL whose secrecy you do not depend on, or a Logic App with its own auth.')
param webhookUrl string = ''

@minValue(1)
@maxValue(365)
@description('The "low days left" rule fires for a tenant whose live secret has fewer days than this.')
param daysLeftThreshold int = 14

// Monitoring Reader: lets the rules' identity read the component's logs (the query runs in the
// component's resource context: Microsoft.Insights/logs/*/read, which the role's */read holds).
var monitoringReaderRoleId = '43d0d8ad-25c7-4714-9337-8ba259a9fe05'

var runbook = 'docs/runbook.md'

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// The rules run their queries as this identity, not as whoever deployed them last: a rule
// without an identity keeps the permissions of its last editor, and would stop evaluating
// (silently, then be disabled after a week of failures) when that person loses access.
resource alertsIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-alerts-${nameSuffix}'
  location: location
  tags: tags
}

// Scoped to the Application Insights component only.
resource alertsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, alertsIdentity.id, monitoringReaderRoleId)
  scope: appInsights
  properties: {
    principalId: alertsIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringReaderRoleId)
  }
}

var webhookReceiver = [
  {
    name: 'webhook'
    serviceUri: webhookUrl
    useCommonAlertSchema: true
  }
]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-rotator-${nameSuffix}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'rotator'
    enabled: true
    emailReceivers: [
      for (address, i) in emailAddresses: {
        name: 'email-${i}'
        emailAddress: address
        useCommonAlertSchema: true
      }
    ]
    webhookReceivers: empty(webhookUrl) ? [] : webhookReceiver
  }
}

// 1. A rotation ended in an outcome a person must hear about (core.telemetry.FAILED_OUTCOMES).
//    One alert per tenant, target and outcome; stateless, so each 15-minute window with a
//    failure notifies once (a failure is an event, not a state that resolves by itself).
var rotationFailedQuery = '''
customMetrics
| where name == "rotator.rotations"
| extend tenant = tostring(customDimensions.tenant), target = tostring(customDimensions.target), outcome = tostring(customDimensions.outcome)
| where outcome in ("failed", "rolled-back", "refused", "nylas-refused")
| summarize failures = sum(valueSum) by tenant, target, outcome
'''

// 2. The latest days-left value of each tenant, from the gauge the nightly scan (and each
//    rotation) sets. A gauge is exported only while the process that set it is alive, so the
//    window is two days (the longest allowed) and the query keeps each tenant's most recent
//    value in it.
//    Stateful: one alert per tenant, resolved when a rotation lifts the value above threshold.
var daysLeftQuery = '''
customMetrics
| where name == "rotator.secret.days_left"
| extend tenant = tostring(customDimensions.tenant), target = tostring(customDimensions.target)
| summarize arg_max(timestamp, valueSum, target) by tenant
| project tenant, target, daysLeft = valueSum
'''

// 3. Dead-man's switch: no successful nightly scan for 26 hours (24 plus 2 of slack).
//    `summarize` without `by` returns exactly one row even when its input is empty (Kusto
//    summarize operator: "If GroupExpression isn't provided, the output is a single row"), with
//    sumif() = 0 and maxif() = null there. The last `where` keeps that row unless the counter
//    counted a success, or the gauge (unix seconds of the last good scan) says one happened, in
//    the last 26 hours. So an app that exports nothing at all - stopped, crashed at start-up,
//    deleted, lost its telemetry permission - yields one row, and the rule (Count > 0) fires.
//    The window is two days so that ago(26h) inside the query sees all 26 hours.
var noSuccessfulScanQuery = '''
customMetrics
| where timestamp > ago(26h)
| where name in ("rotator.scans", "rotator.scan.last_success")
| summarize successfulScans = sumif(valueSum, name == "rotator.scans" and tostring(customDimensions.outcome) == "success"), lastSuccessUnix = maxif(valueSum, name == "rotator.scan.last_success")
| extend lastSuccess = unixtime_seconds_todatetime(lastSuccessUnix)
| where coalesce(successfulScans, 0.0) < 1 and (isnull(lastSuccess) or lastSuccess < ago(26h))
| project successfulScans, lastSuccess
'''

// 4. The poison-queue function gave up on a rotation request (it counts rotator.alerts with
//    kind "poison-message" as it alerts). Stateless, like rule 1.
var poisonMessageQuery = '''
customMetrics
| where name == "rotator.alerts"
| extend kind = tostring(customDimensions.kind), tenant = tostring(customDimensions.tenant)
| where kind == "poison-message"
| summarize poisoned = sum(valueSum) by tenant
'''

resource rotationFailed 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-rotation-failed-${nameSuffix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${alertsIdentity.id}': {}
    }
  }
  properties: {
    displayName: 'Rotator: rotation failed'
    description: 'A rotation ended failed, rolled-back, refused or nylas-refused. What to do: ${runbook}#monitor-rotation-failed'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: rotationFailedQuery
          timeAggregation: 'Total'
          metricMeasureColumn: 'failures'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'tenant'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'target'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'outcome'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
      customProperties: {
        runbook: '${runbook}#monitor-rotation-failed'
      }
    }
  }
  dependsOn: [
    alertsReader
  ]
}

resource lowDaysLeft 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-low-days-left-${nameSuffix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${alertsIdentity.id}': {}
    }
  }
  properties: {
    displayName: 'Rotator: secret close to expiry'
    description: 'A tenant\'s live client secret has fewer than ${daysLeftThreshold} days left. What to do: ${runbook}#monitor-low-days-left'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'P2D'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: daysLeftQuery
          timeAggregation: 'Minimum'
          metricMeasureColumn: 'daysLeft'
          operator: 'LessThan'
          threshold: daysLeftThreshold
          dimensions: [
            {
              name: 'tenant'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'target'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
      customProperties: {
        runbook: '${runbook}#monitor-low-days-left'
      }
    }
  }
  dependsOn: [
    alertsReader
  ]
}

resource noSuccessfulScan 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-no-successful-scan-${nameSuffix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${alertsIdentity.id}': {}
    }
  }
  properties: {
    displayName: 'Rotator: no successful nightly scan for 26 hours'
    description: 'No successful nightly scan in 26 hours, or no telemetry from the app at all. What to do: ${runbook}#monitor-no-successful-scan'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'P2D'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: noSuccessfulScanQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
      customProperties: {
        runbook: '${runbook}#monitor-no-successful-scan'
      }
    }
  }
  dependsOn: [
    alertsReader
  ]
}

resource poisonMessage 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-poison-message-${nameSuffix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${alertsIdentity.id}': {}
    }
  }
  properties: {
    displayName: 'Rotator: rotation request set aside (poison queue)'
    description: 'A rotation request failed every delivery, or was unreadable, and went to the poison queue. What to do: ${runbook}#monitor-poison-message'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: poisonMessageQuery
          timeAggregation: 'Total'
          metricMeasureColumn: 'poisoned'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'tenant'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
      customProperties: {
        runbook: '${runbook}#monitor-poison-message'
      }
    }
  }
  dependsOn: [
    alertsReader
  ]
}

output actionGroupId string = actionGroup.id
output actionGroupName string = actionGroup.name
output alertRuleNames array = [
  rotationFailed.name
  lowDaysLeft.name
  noSuccessfulScan.name
  poisonMessage.name
]

// One shared workbook, "Nylas Entra rotator: tenants", linked to the Application Insights
// component: every tenant's days to expiry, state and last rotation attempt, and the nightly
// scans, at one glance. It reads the same OpenTelemetry metrics as the alert rules
// (customMetrics rows named as in core/telemetry.py; see alerts.bicep for where they come from
// and why the classic table names apply in the component's context). serializedData is built
// here as an object and turned into JSON with string(), so tests/infra can read every query.
//
// Telemetry is kept as long as the workspace keeps it (monitoring.bicep, 30 days by default):
// "last rotation" is the last attempt within that time, empty for a tenant that has not
// rotated since. `python -m rotator status TENANT` reads the real record from Key Vault.

param location string
param tags object = {}

@description('Name of the Application Insights component the app sends telemetry to.')
param applicationInsightsName string

@description('Days-left values below this are shown red (the "low days left" alert threshold).')
param daysLeftThreshold int = 14

@description('Days-left values below this are shown amber (the default rotate-before days).')
param rotateBeforeDays int = 30

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// 30 days, the workspace's default retention.
var lookbackMs = 2592000000

var tenantsQuery = '''
customMetrics
| where name == "rotator.secret.days_left"
| extend tenant = tostring(customDimensions.tenant), target = tostring(customDimensions.target), state = tostring(customDimensions.state)
| summarize arg_max(timestamp, valueSum, target, state) by tenant
| project tenant, target, state, daysLeft = round(valueSum, 1), reported = timestamp
| join kind=leftouter (
    customMetrics
    | where name == "rotator.rotations"
    | extend tenant = tostring(customDimensions.tenant), outcome = tostring(customDimensions.outcome), trigger = tostring(customDimensions.trigger)
    | summarize arg_max(timestamp, outcome, trigger) by tenant
    | project tenant, lastRotation = timestamp, lastOutcome = outcome, lastTrigger = trigger
  ) on tenant
| project tenant, target, state, daysLeft, lastRotation, lastOutcome, lastTrigger, reported
| order by daysLeft asc
'''

var scansQuery = '''
customMetrics
| where name in ("rotator.scans", "rotator.scan.last_success")
| summarize lastSuccessUnix = maxif(valueSum, name == "rotator.scan.last_success"), lastSuccessCounted = maxif(timestamp, name == "rotator.scans" and tostring(customDimensions.outcome) == "success"), successfulScans = sumif(valueSum, name == "rotator.scans" and tostring(customDimensions.outcome) == "success"), failedScans = sumif(valueSum, name == "rotator.scans" and tostring(customDimensions.outcome) == "failed")
| extend lastSuccessfulScan = coalesce(unixtime_seconds_todatetime(lastSuccessUnix), lastSuccessCounted)
| project lastSuccessfulScan, successfulScans, failedScans
'''

var outcomesQuery = '''
customMetrics
| where name == "rotator.rotations"
| extend outcome = tostring(customDimensions.outcome)
| summarize rotations = sum(valueSum) by outcome, bin(timestamp, 1d)
'''

var daysLeftColors = {
  columnMatch: 'daysLeft'
  formatter: 18
  formatOptions: {
    thresholdsOptions: 'colors'
    thresholdsGrid: [
      {
        operator: '<'
        thresholdValue: string(daysLeftThreshold)
        representation: 'redBright'
        text: '{0}{1}'
      }
      {
        operator: '<'
        thresholdValue: string(rotateBeforeDays)
        representation: 'orange'
        text: '{0}{1}'
      }
      {
        operator: 'Default'
        representation: 'green'
        text: '{0}{1}'
      }
    ]
  }
}

var workbookContent = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      name: 'intro'
      content: {
        json: '## Nylas Entra rotator: tenants\nDays until each tenant\'s live client secret expires (red below ${daysLeftThreshold}, the alert threshold; amber below ${rotateBeforeDays}), its state, and its last rotation attempt in the last 30 days. Values come from the nightly scan; `reported` is when. What each alert means: docs/runbook.md.'
      }
    }
    {
      type: 3
      name: 'tenants'
      content: {
        version: 'KqlItem/1.0'
        title: 'Tenants'
        query: tenantsQuery
        size: 0
        timeContext: {
          durationMs: lookbackMs
        }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
        gridSettings: {
          formatters: [
            daysLeftColors
          ]
        }
      }
    }
    {
      type: 3
      name: 'scans'
      content: {
        version: 'KqlItem/1.0'
        title: 'Nightly scans (last 30 days)'
        query: scansQuery
        size: 4
        timeContext: {
          durationMs: lookbackMs
        }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 3
      name: 'outcomes'
      content: {
        version: 'KqlItem/1.0'
        title: 'Rotation attempts by outcome, per day'
        query: outcomesQuery
        size: 0
        timeContext: {
          durationMs: lookbackMs
        }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'barchart'
      }
    }
  ]
  isLocked: false
  fallbackResourceIds: [
    toLower(appInsights.id)
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID; this one is stable per resource group.
  name: guid(resourceGroup().id, 'nylas-entra-rotator-tenants')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Nylas Entra rotator: tenants'
    category: 'workbook'
    // Linked to the component: the workbook is listed under its Workbooks blade.
    sourceId: toLower(appInsights.id)
    serializedData: string(workbookContent)
  }
}

output workbookId string = workbook.id
output workbookName string = workbook.name

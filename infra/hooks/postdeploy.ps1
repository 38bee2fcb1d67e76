# azd postdeploy hook (Windows / PowerShell): same as postdeploy.sh. Wires Key Vault
# secret-expiry events to the on_key_vault_event function by deploying
# infra/eventgrid.bicep after the code is deployed. Idempotent.
#
# Needs the Azure CLI signed in to the same tenant and subscription as azd (`az login`).
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$functionName = 'on_key_vault_event'

foreach ($name in 'AZURE_RESOURCE_GROUP', 'AZURE_FUNCTION_APP_NAME', 'AZURE_KEY_VAULT_NAME', 'AZURE_STORAGE_ACCOUNT_NAME') {
    if (-not [Environment]::GetEnvironmentVariable($name)) {
        throw "$name is not set: run through azd (azd up / azd deploy) after azd provision."
    }
}
$deadLetterContainer = if ($env:EVENT_GRID_DEAD_LETTER_CONTAINER) { $env:EVENT_GRID_DEAD_LETTER_CONTAINER } else { 'eventgrid-deadletter' }
$secretPrefix = if ($env:SECRET_PREFIX) { $env:SECRET_PREFIX } else { 'nylas-entra-' }
$deploymentName = if ($env:AZURE_ENV_NAME) { "eventgrid-$($env:AZURE_ENV_NAME)" } else { 'eventgrid-rotator' }

if ($env:AZURE_SUBSCRIPTION_ID) {
    az account set --subscription $env:AZURE_SUBSCRIPTION_ID
    if ($LASTEXITCODE -ne 0) { throw 'az account set failed; run az login first.' }
}

Write-Host "Waiting for function $functionName on $($env:AZURE_FUNCTION_APP_NAME)..."
$found = $false
for ($attempt = 0; $attempt -lt 30; $attempt++) {
    az functionapp function show `
        --resource-group $env:AZURE_RESOURCE_GROUP `
        --name $env:AZURE_FUNCTION_APP_NAME `
        --function-name $functionName `
        --query name --output tsv *> $null
    if ($LASTEXITCODE -eq 0) { $found = $true; break }
    Start-Sleep -Seconds 10
}
if (-not $found) {
    throw "Function $functionName not found on $($env:AZURE_FUNCTION_APP_NAME) after 5 minutes; is the code deployed?"
}

Write-Host "Deploying infra/eventgrid.bicep to $($env:AZURE_RESOURCE_GROUP)..."
az deployment group create `
    --resource-group $env:AZURE_RESOURCE_GROUP `
    --name $deploymentName `
    --template-file (Join-Path $PSScriptRoot '..' 'eventgrid.bicep') `
    --parameters `
        "keyVaultName=$($env:AZURE_KEY_VAULT_NAME)" `
        "functionAppName=$($env:AZURE_FUNCTION_APP_NAME)" `
        "storageAccountName=$($env:AZURE_STORAGE_ACCOUNT_NAME)" `
        "deadLetterContainerName=$deadLetterContainer" `
        "functionName=$functionName" `
        "secretPrefix=$secretPrefix" `
    --output none
if ($LASTEXITCODE -ne 0) { throw 'az deployment group create failed.' }
Write-Host "Event Grid subscription for $($env:AZURE_KEY_VAULT_NAME) -> $functionName is in place."

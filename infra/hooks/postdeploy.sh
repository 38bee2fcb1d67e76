#!/usr/bin/env bash
# azd postdeploy hook: wire Key Vault secret-expiry events to the on_key_vault_event
# function by deploying infra/eventgrid.bicep. It runs after `azd deploy` because an
# Event Grid subscription to an AzureFunction endpoint is validated against the
# deployed function. Idempotent: safe to re-run by hand (values from `azd env get-values`).
#
# Needs the Azure CLI signed in to the same tenant and subscription as azd (`az login`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
function_name="on_key_vault_event"

: "${AZURE_RESOURCE_GROUP:?not set: run through azd, or eval \"\$(azd env get-values)\" first}"
: "${AZURE_FUNCTION_APP_NAME:?not set: run azd provision first}"
: "${AZURE_KEY_VAULT_NAME:?not set: run azd provision first}"
: "${AZURE_STORAGE_ACCOUNT_NAME:?not set: run azd provision first}"
dead_letter_container="${EVENT_GRID_DEAD_LETTER_CONTAINER:-eventgrid-deadletter}"
secret_prefix="${SECRET_PREFIX:-nylas-entra-}"

if [ -n "${AZURE_SUBSCRIPTION_ID:-}" ]; then
  az account set --subscription "$AZURE_SUBSCRIPTION_ID"
fi

# The function shows up once the host has indexed the new package; wait up to 5 minutes.
echo "Waiting for function ${function_name} on ${AZURE_FUNCTION_APP_NAME}..."
attempt=0
until az functionapp function show \
    --resource-group "$AZURE_RESOURCE_GROUP" \
    --name "$AZURE_FUNCTION_APP_NAME" \
    --function-name "$function_name" \
    --query name --output tsv >/dev/null 2>&1; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 30 ]; then
    echo "Function ${function_name} not found on ${AZURE_FUNCTION_APP_NAME} after 5 minutes; is the code deployed?" >&2
    exit 1
  fi
  sleep 10
done

echo "Deploying infra/eventgrid.bicep to ${AZURE_RESOURCE_GROUP}..."
az deployment group create \
  --resource-group "$AZURE_RESOURCE_GROUP" \
  --name "eventgrid-${AZURE_ENV_NAME:-rotator}" \
  --template-file "${here}/../eventgrid.bicep" \
  --parameters \
    keyVaultName="$AZURE_KEY_VAULT_NAME" \
    functionAppName="$AZURE_FUNCTION_APP_NAME" \
    storageAccountName="$AZURE_STORAGE_ACCOUNT_NAME" \
    deadLetterContainerName="$dead_letter_container" \
    functionName="$function_name" \
    secretPrefix="$secret_prefix" \
  --output none
echo "Event Grid subscription for ${AZURE_KEY_VAULT_NAME} -> ${function_name} is in place."

#!/bin/sh
# azd postdeploy hook: subscribe vm_events to every protected subscription's Event Grid system topic.
# Runs after the code is deployed because Event Grid validates an AzureFunction destination against the
# function itself: before the first deploy there is no vm_events to point at (infra/README.md).
# azd passes main.bicep's outputs as environment variables. Idempotent: a re-run updates the subscriptions.
set -eu

: "${AZURE_FUNCTION_APP_ID:?main.bicep output missing: run azd provision first}"
: "${AZURE_IDENTITY_ID:?}" "${AZURE_STORAGE_ACCOUNT_ID:?}" "${EVENTGRID_DEADLETTER_CONTAINER:?}"
: "${EVENTGRID_SYSTEM_TOPIC_IDS:?}" "${AZURE_LOCATION:?}"

here=$(cd "$(dirname "$0")" && pwd)
params=$(mktemp)
trap 'rm -f "$params"' EXIT
cat >"$params" <<JSON
{
  "\$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "systemTopicIds": {"value": ${EVENTGRID_SYSTEM_TOPIC_IDS}},
    "functionAppId": {"value": "${AZURE_FUNCTION_APP_ID}"},
    "identityId": {"value": "${AZURE_IDENTITY_ID}"},
    "storageAccountId": {"value": "${AZURE_STORAGE_ACCOUNT_ID}"},
    "deadLetterContainerName": {"value": "${EVENTGRID_DEADLETTER_CONTAINER}"}
  }
}
JSON

echo "vmkeeper: subscribing vm_events to the system topics: ${EVENTGRID_SYSTEM_TOPIC_IDS}"
az deployment sub create \
  --name "vmkeeper-vm-events-${AZURE_ENV_NAME:-vmkeeper}" \
  --location "${AZURE_LOCATION}" \
  --template-file "${here}/../eventgrid/event-subscriptions.bicep" \
  --parameters "@${params}" \
  --only-show-errors --output none
echo "vmkeeper: vm_events subscribed"

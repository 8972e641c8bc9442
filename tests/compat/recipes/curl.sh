# recipe: curl
# B is dmsync's address; the tenant, app and user are the development identities.
B=${B:-http://127.0.0.1:8080}
TENANT=11111111-1111-4111-8111-111111111111
json() { python3 -c "import sys, json; d = json.load(sys.stdin); print($1)"; }

# A delegated token, as Entra ID issues one.
TOKEN=$(curl -sSf -X POST "$B/$TENANT/oauth2/v2.0/token" \
  -d grant_type=password -d client_id=22222222-2222-4222-8222-222222222222 \
  -d username=admin@contoso.onmicrosoft.com -d password=dmsync-dev-password \
  -d scope=https://graph.microsoft.com/.default | json 'd["access_token"]')
AUTH="Authorization: Bearer $TOKEN"

# The Autopilot sync: 204 and no body. Then wait for it, as Get-AutopilotSyncInfo would show it.
curl -sS -o /dev/null -w 'sync: %{http_code}\n' -X POST -H "$AUTH" "$B/beta/deviceManagement/windowsAutopilotSettings/sync"
until [ "$(curl -sSf -H "$AUTH" "$B/beta/deviceManagement/windowsAutopilotSettings" | json 'd["syncStatus"]')" = completed ]; do
  sleep 1
done
echo "syncStatus: completed"

# Devices by part of the serial number: -G with --data-urlencode builds and encodes the query.
curl -sSf -G -H "$AUTH" "$B/v1.0/deviceManagement/windowsAutopilotDeviceIdentities" \
  --data-urlencode "\$filter=contains(serialNumber,'PF1')" --data-urlencode '$select=id,serialNumber' \
  | json '"found: " + " ".join(x["serialNumber"] for x in d["value"])'

# Every device, a page of 2 at a time: follow @odata.nextLink as given until there is none.
url="$B/v1.0/deviceManagement/windowsAutopilotDeviceIdentities?\$top=2"
while [ -n "$url" ]; do
  page=$(curl -sSf -H "$AUTH" "$url")
  echo "$page" | json '"page: " + " ".join(x["serialNumber"] for x in d["value"])'
  url=$(echo "$page" | json 'd.get("@odata.nextLink", "")')
done

# Errors are Graph's JSON: a second sync at once is 429 (or 409 while one still runs).
curl -sS -X POST -H "$AUTH" "$B/beta/deviceManagement/windowsAutopilotSettings/sync" | json '"error: " + d["error"]["code"]'
# end recipe: curl

# recipe: curl-proxy
# dmsync serve --proxy-listen 127.0.0.1:8888: P is the proxy, B dmsync's own address.
B=${B:-http://127.0.0.1:8080}
P=${P:-http://127.0.0.1:8888}
TENANT=11111111-1111-4111-8111-111111111111
json() { python3 -c "import sys, json; d = json.load(sys.stdin); print($1)"; }

# The CA that signs the certificates the proxy presents for Microsoft's hosts.
curl -sSf "$B/_dmsync/ca.pem" -o dmsync-ca.pem
ms() { curl --proxy "$P" --cacert dmsync-ca.pem "$@"; }

# Microsoft's real host names, answered by dmsync.
TOKEN=$(ms -sSf -X POST "https://login.microsoftonline.com/$TENANT/oauth2/v2.0/token" \
  -d grant_type=password -d client_id=22222222-2222-4222-8222-222222222222 \
  -d username=admin@contoso.onmicrosoft.com -d password=dmsync-dev-password \
  -d scope=https://graph.microsoft.com/.default | json 'd["access_token"]')
AUTH="Authorization: Bearer $TOKEN"
ms -sS -o /dev/null -w 'sync: %{http_code}\n' -X POST -H "$AUTH" \
  https://graph.microsoft.com/beta/deviceManagement/windowsAutopilotSettings/sync
until [ "$(ms -sSf -H "$AUTH" https://graph.microsoft.com/beta/deviceManagement/windowsAutopilotSettings \
  | json 'd["syncStatus"]')" = completed ]; do sleep 1; done

# nextLinks name graph.microsoft.com too, so following them stays on the proxy.
url='https://graph.microsoft.com/v1.0/deviceManagement/windowsAutopilotDeviceIdentities?$top=2'
while [ -n "$url" ]; do
  page=$(ms -sSf -H "$AUTH" "$url")
  echo "page of $(echo "$page" | json 'len(d["value"])') from ${url%%/v1.0/*}"
  url=$(echo "$page" | json 'd.get("@odata.nextLink", "")')
done

# Any other host is refused (403), unless dmsync runs with --proxy-pass-through.
ms -sS -o /dev/null -w 'example.com: %{http_connect}\n' https://example.com/ || true
# end recipe: curl-proxy

"""How to point the Microsoft Graph Python SDKs at dmsync. docs/CLIENTS.md quotes this file
between the `recipe:` markers (test_docs_recipes.py checks that it does, word for word), and
conftest.py builds every client of the suite with it.
"""

# recipe: python-graph-sdk
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)


class FixedToken(AccessTokenProvider):
    """Hands the SDK a token you already have (from dmsync's token endpoint), for these hosts only."""

    def __init__(self, token: str, hosts: list[str]):
        self.token, self.validator = token, AllowedHostsValidator(hosts)  # bare host names, no scheme

    async def get_authorization_token(self, uri, additional_authentication_context={}):
        return self.token if self.validator.is_url_host_valid(uri) else ""  # "" sends no Authorization

    def get_allowed_hosts_validator(self):
        return self.validator


def beta_client(port: int, token: str, host: str = "127.0.0.1"):
    """msgraph-beta-sdk against dmsync; kiota allows http only to localhost, 127.0.0.1 and ::1."""
    from msgraph_beta import GraphRequestAdapter, GraphServiceClient

    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(FixedToken(token, [host])))
    adapter.base_url = f"http://{host}:{port}/beta"
    return GraphServiceClient(request_adapter=adapter)


def v1_client(port: int, token: str, host: str = "127.0.0.1"):
    """msgraph-sdk (v1.0) against dmsync, the same way."""
    from msgraph import GraphRequestAdapter, GraphServiceClient

    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(FixedToken(token, [host])))
    adapter.base_url = f"http://{host}:{port}/v1.0"
    return GraphServiceClient(request_adapter=adapter)
# end recipe: python-graph-sdk

"""Builders for the real clients, configured only with what production config varies:
base URLs, the CA bundle, the authority host and verify_challenge_resource=False."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from azure.identity import ClientSecretCredential
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets.aio import SecretClient as AsyncSecretClient
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient

from emulators import Emulators

T = TypeVar("T")
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def _credential_args(emu: Emulators, client_id: str | None, secret: str | None) -> tuple[list[str], dict[str, Any]]:
    env = emu.env()
    args = [env["AZURE_TENANT_ID"], client_id or env["AZURE_CLIENT_ID"], secret or env["AZURE_CLIENT_SECRET"]]
    options = {
        "authority": env["AZURE_AUTHORITY_HOST"],
        "disable_instance_discovery": True,
        "connection_verify": env["CA_BUNDLE"],
    }
    return args, options


def credential(emu: Emulators, client_id: str | None = None, secret: str | None = None) -> ClientSecretCredential:
    args, options = _credential_args(emu, client_id, secret)
    return ClientSecretCredential(*args, **options)


def async_credential(emu: Emulators, client_id: str | None = None, secret: str | None = None) -> Any:
    args, options = _credential_args(emu, client_id, secret)
    return AsyncClientSecretCredential(*args, **options)


def secret_client(emu: Emulators, **kwargs: Any) -> SecretClient:
    env = emu.env()
    return SecretClient(
        env["KEY_VAULT_URL"],
        credential(emu),
        verify_challenge_resource=False,
        connection_verify=env["CA_BUNDLE"],
        **kwargs,
    )


def async_secret_client(emu: Emulators, cred: Any = None) -> AsyncSecretClient:
    env = emu.env()
    return AsyncSecretClient(
        env["KEY_VAULT_URL"],
        cred or async_credential(emu),
        verify_challenge_resource=False,
        connection_verify=env["CA_BUNDLE"],
    )


class Graph:
    """A GraphServiceClient plus the resources to close; build it inside the running loop."""

    def __init__(self, emu: Emulators, client_id: str | None = None, secret: str | None = None) -> None:
        env = emu.env()
        self.credential = async_credential(emu, client_id, secret)
        auth = AzureIdentityAuthenticationProvider(self.credential, scopes=[GRAPH_SCOPE], allowed_hosts=["127.0.0.1"])
        self.http = httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=env["CA_BUNDLE"]), base_url=env["GRAPH_BASE_URL"]
        )
        adapter = GraphRequestAdapter(auth, client=self.http)
        adapter.base_url = env["GRAPH_BASE_URL"]
        self.client = GraphServiceClient(request_adapter=adapter)

    async def close(self) -> None:
        await self.credential.close()
        await self.http.aclose()


def with_graph(emu: Emulators, body: Callable[[GraphServiceClient], Awaitable[T]], **kwargs: Any) -> T:
    """Run ``body(client)`` in a fresh event loop (msgraph is async only)."""

    async def main() -> T:
        graph = Graph(emu, **kwargs)
        try:
            return await body(graph.client)
        finally:
            await graph.close()

    return asyncio.run(main())


def prefer_create_if_missing() -> RequestConfiguration[Any]:
    config: RequestConfiguration[Any] = RequestConfiguration()
    config.headers.add("Prefer", "create-if-missing")
    return config

"""Start all emulators over HTTPS with a throw-away CA (trustme), sharing one World."""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from types import TracebackType

import trustme

from ._http import RunningServer, Service
from .control import ControlService
from .entra import EntraService
from .graph import GraphService
from .keyvault import KeyVaultService
from .nylas import NylasService
from .world import World

SERVICES = ("entra", "graph", "keyvault", "nylas", "control")


class Emulators:
    """Handle on the running emulators: ``urls``, ``ca_path``, ``world``, ``env()``, ``stop()``."""

    def __init__(self, world: World, servers: dict[str, RunningServer], ca_path: str, host: str) -> None:
        self.world = world
        self._servers = servers
        self.ca_path = ca_path
        self.host = host
        base = {name: server.base_url for name, server in servers.items()}
        self.urls: dict[str, str] = {
            "entra": base["entra"],
            "graph": base["graph"] + "/v1.0",
            "keyvault": base["keyvault"] + "/",
            "nylas": base["nylas"],
            "control": base["control"],
        }

    @classmethod
    def start(
        cls,
        host: str = "127.0.0.1",
        graph_replication_delay: float = 0.0,
        propagation_delay: float = 0.0,
        *,
        port_base: int = 0,
        lifetime_policy_days: int | None = None,
        purge_protection: bool = True,
        world: World | None = None,
    ) -> Emulators:
        """Start the five servers; port_base=0 picks free ports, else port_base..port_base+4."""
        world = world or World()
        world.set_defaults(
            graph_replication_delay=graph_replication_delay,
            propagation_delay=propagation_delay,
            lifetime_policy_max_days=lifetime_policy_days,
            purge_protection=purge_protection,
        )
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        fd, ca_path = tempfile.mkstemp(prefix="emulators-ca-", suffix=".pem")
        with os.fdopen(fd, "wb") as fh:
            fh.write(ca.cert_pem.bytes())

        entra = EntraService(world)
        services: dict[str, Service] = {
            "entra": entra,
            "graph": GraphService(world),
            "keyvault": KeyVaultService(world, lambda: entra.base_url),
            "nylas": NylasService(world, lambda: entra.base_url),
            "control": ControlService(world),
        }
        servers: dict[str, RunningServer] = {}
        try:
            for i, name in enumerate(SERVICES):
                port = port_base + i if port_base else 0
                servers[name] = RunningServer(services[name], host, port, ctx)
        except OSError:
            for server in servers.values():
                server.httpd.server_close()
            os.unlink(ca_path)
            raise
        for server in servers.values():
            server.start()
        return cls(world, servers, ca_path, host)

    def env(self) -> dict[str, str]:
        """Settings that point the service at these emulators (names as core.settings reads them)."""
        ident = self.world.identity
        nylas = self.urls["nylas"]
        return {
            "AZURE_TENANT_ID": ident.tenant_id,
            "AZURE_CLIENT_ID": ident.client_id,
            "AZURE_CLIENT_SECRET": ident.client_secret,
            "AZURE_AUTHORITY_HOST": self.urls["entra"],
            "GRAPH_BASE_URL": self.urls["graph"],
            "KEY_VAULT_URL": self.urls["keyvault"],
            "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "false",
            "CA_BUNDLE": self.ca_path,
            "NYLAS_V3_API_US": nylas,
            "NYLAS_V3_API_EU": nylas,
            "NYLAS_V2_API_US": nylas,
            "NYLAS_V2_API_EU": nylas,
        }

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only the emulators' CA (for httpx/aiohttp)."""
        return ssl.create_default_context(cafile=self.ca_path)

    def stop(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._servers = {}
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.ca_path)

    def __enter__(self) -> Emulators:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

"""Apps tagged with our marker, listed through Microsoft Graph (``tags/any``), for cleanup.

``clients.graph.GraphClient`` has no listing of its own yet, so this rides on its event loop and
SDK client (the same credential, retries and CA bundle). It belongs in ``GraphClient`` as
``list_tagged`` next to ``find_by_unique_name``; then this module can go.
"""

from __future__ import annotations

from typing import Any

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.applications.applications_request_builder import ApplicationsRequestBuilder
from msgraph.generated.models.application import Application

from clients.graph import GraphClient, _app_info
from clients.interfaces import AppInfo

MAX_PAGES = 100


class GraphDirectory:
    def __init__(self, graph: GraphClient) -> None:
        self._graph = graph

    def list_tagged(self, tag: str) -> list[AppInfo]:
        quoted = tag.replace("'", "''")

        async def go() -> list[Application]:
            client = await self._graph._graph()
            query = ApplicationsRequestBuilder.ApplicationsRequestBuilderGetQueryParameters(
                filter=f"tags/any(t:t eq '{quoted}')", top=100
            )
            config: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
            page = await client.applications.get(config)
            found: list[Application] = []
            for _ in range(MAX_PAGES):
                if page is None:
                    break
                found += page.value or []
                if not page.odata_next_link:
                    break
                page = await client.applications.with_url(page.odata_next_link).get()
            return found

        return [_app_info(app) for app in self._graph._run(go())]

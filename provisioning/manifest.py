"""The permission manifest an app registration for Nylas gets.

The default is the sample ``requiredResourceAccess`` from the Nylas page "Create an
Azure auth app for Nylas v2", shipped beside this file with each GUID named.
Operators may point PERMISSION_MANIFEST_PATH at a file of the same shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from core.errors import ServiceError

DEFAULT_MANIFEST = Path(__file__).with_name("nylas_v2_manifest.json")


class ManifestError(ServiceError):
    code = "manifest_invalid"


@dataclass(frozen=True)
class Manifest:
    required_resource_access: tuple[dict[str, Any], ...]  # exactly what Graph accepts
    admin_consent: tuple[str, ...]  # names of the permissions that need an administrator's consent
    source: str


@cache
def load_manifest(path: str = "") -> Manifest:
    source = Path(path) if path else DEFAULT_MANIFEST
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
        resources = data["requiredResourceAccess"]
        clean = []
        consent = []
        for resource in resources:
            access = []
            for item in resource["resourceAccess"]:
                if item["type"] not in ("Scope", "Role"):
                    raise ValueError(f"type {item['type']!r}")
                access.append({"id": str(item["id"]), "type": item["type"]})
                # Application permissions (Role) always need an admin; delegated ones when marked.
                if item.get("adminConsent") or item["type"] == "Role":
                    consent.append(str(item.get("name", item["id"])))
            clean.append({"resourceAppId": str(resource["resourceAppId"]), "resourceAccess": access})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"permission manifest {source} is not usable: {exc}") from None
    return Manifest(tuple(clean), tuple(consent), str(source))

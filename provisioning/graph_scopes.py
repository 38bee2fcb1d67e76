"""Microsoft Graph delegated permissions a v3 app may ask for, by name.

Ids from Microsoft's permissions reference (world-facts §1, source G1); resource
``00000003-0000-0000-c000-000000000000`` is Microsoft Graph, type ``Scope`` is a
delegated permission. Nylas v3 asks for Graph scopes only (no Exchange EAS/EWS, no
Azure AD Graph) and always for ``offline_access``, so it can refresh a user's token
(world-facts "What changed" 4, §1, source N12).
"""

from __future__ import annotations

from typing import Any

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_SCOPE_PREFIX = "https://graph.microsoft.com/"

GRAPH_DELEGATED_SCOPES: dict[str, str] = {
    "Mail.Read": "570282fd-fa5c-430d-a7fd-fc8dc98a9dca",
    "Mail.ReadWrite": "024d486e-b451-40bb-833d-3e66d98c5c73",
    "Mail.Send": "e383f46e-2787-4529-855e-0e479a3ffac0",
    "Calendars.Read": "465a38f9-76ea-45b9-9f34-9e8b0d4b0b42",
    "Calendars.ReadWrite": "1ec239c2-d7c9-4623-a91a-a9775856bb36",
    "Contacts.Read": "ff74d97f-43af-4b68-9f2a-b77ee6968c5d",
    "Contacts.ReadWrite": "d56682ec-c09e-4743-aaf4-1a3aac4caa21",
    "People.Read": "ba47897c-39ec-4d83-8086-ee8256fa737d",
    "OnlineMeetings.ReadWrite": "a65f2972-a4f8-4f5e-afd7-69ccb046d5dc",
    "User.Read": "e1fe6dd8-ba31-4d61-89e7-88639da4683d",
    "offline_access": "7427e0e9-2fba-42fe-b0c0-848c9e6a8182",
    "openid": "37f7f235-527c-4136-accd-4a02d197296e",
    "profile": "14dad69e-099b-42c9-810b-d002981feec1",
}

# Always asked for: Nylas refreshes tokens (offline_access) and signs users in with OpenID Connect.
ALWAYS = ("offline_access", "openid", "profile")
# Mail, send, calendar and contacts, as Nylas's Microsoft scope guide lists them (N12).
DEFAULT_SCOPES = (
    "Mail.ReadWrite",
    "Mail.Send",
    "Calendars.ReadWrite",
    "Contacts.ReadWrite",
    "User.Read",
    *ALWAYS,
)
# Entra: at most 30 permissions per API for apps that allow personal accounts (E1).
MAX_PERMISSIONS_PER_API = 30


def canonical(name: str) -> str | None:
    """The table's spelling of a scope name (case-insensitive; the Graph URL prefix allowed), or None."""
    short = name[len(GRAPH_SCOPE_PREFIX) :] if name.lower().startswith(GRAPH_SCOPE_PREFIX) else name
    return next((known for known in GRAPH_DELEGATED_SCOPES if known.lower() == short.lower()), None)


def required_resource_access(scopes: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    """Graph's requiredResourceAccess for these (canonical) scope names."""
    access = [{"id": GRAPH_DELEGATED_SCOPES[s], "type": "Scope"} for s in scopes]
    return ({"resourceAppId": GRAPH_APP_ID, "resourceAccess": access},)


def qualified(scopes: tuple[str, ...]) -> list[str]:
    """The scope strings Nylas v3 takes: Graph permissions fully qualified, OpenID ones bare (N12)."""
    bare = {"offline_access", "openid", "profile"}
    return [s if s in bare else GRAPH_SCOPE_PREFIX + s for s in scopes]

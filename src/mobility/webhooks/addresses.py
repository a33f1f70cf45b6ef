"""Where a webhook may go (server-side request forgery): an endpoint's URL is checked when it is
registered, and its host's addresses again at every delivery (a name may resolve elsewhere by then).

Refused unless `webhook_allow_private_addresses` is set (on-premises installations): addresses that are
private, loopback, link-local (cloud metadata at 169.254.169.254 among them), unspecified, multicast,
reserved or otherwise not globally routable, IPv4-mapped IPv6 forms of those, and names such as
`localhost`. Plain http only when private addresses are allowed; a URL with credentials never. The
delivery connects to an address it checked (not to a name resolved again later) and follows no
redirect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from mobility.core.errors import InvalidInput

LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class AddressRefused(Exception):
    pass


def _refused_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for flag in (
        "is_loopback",
        "is_private",
        "is_link_local",
        "is_multicast",
        "is_reserved",
        "is_unspecified",
    ):
        if getattr(address, flag):
            return flag.removeprefix("is_").replace("_", "-")
    if not address.is_global:
        return "not globally routable"
    return None


def check_url(url: str, *, allow_private: bool) -> str:
    """The URL, if it may be registered; InvalidInput (field `url`) saying why not."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"Not a valid URL: {exc}.", field="url") from None
    if parts.scheme not in ("https", "http"):
        raise InvalidInput("The URL must start with https://.", field="url")
    if parts.scheme == "http" and not allow_private:
        raise InvalidInput("Webhooks go over HTTPS: the URL must start with https://.", field="url")
    if not host:
        raise InvalidInput("The URL has no host.", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("The URL must not carry credentials; the signature authenticates us.", field="url")
    if port == 0:
        raise InvalidInput("The URL's port is not valid.", field="url")
    if parts.fragment:
        raise InvalidInput("The URL must not have a #fragment.", field="url")
    if allow_private:
        return url
    if host.rstrip(".").lower() in LOCAL_NAMES or host.rstrip(".").lower().endswith(".localhost"):
        raise InvalidInput(
            "The URL names this machine (localhost); it must be reachable on the internet.", field="url"
        )
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return url  # a name: its addresses are checked at every delivery
    reason = _refused_address(literal)
    if reason:
        raise InvalidInput(f"The URL's address is {reason}; it must be a public address.", field="url")
    return url


async def resolve_public(host: str, port: int, *, allow_private: bool) -> str:
    """An address of `host` to connect to, every one of its addresses checked (a name with one private
    address among public ones is refused: the resolver may hand out either)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise AddressRefused(f"cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise AddressRefused(f"{host} has no address")
    if not allow_private:
        for text in addresses:
            reason = _refused_address(ipaddress.ip_address(text.split("%")[0]))
            if reason:
                raise AddressRefused(f"{host} resolves to {text}, which is {reason}: refused")
    return addresses[0]

"""Where notifications may go: a subscription's endpoint is otherwise an SSRF hole.

``CITYPARK_NOTIFY_ALLOW`` is a comma-separated list of host names and IP addresses/CIDRs.
When it is set, only endpoints on a listed host, or whose every address lies in a listed
range, are accepted. Whatever the list, an address that is not globally routable (loopback,
RFC 1918 private, link-local, CGNAT, multicast, reserved, unspecified; IPv4-mapped IPv6
included) is refused unless the host or that address is listed. The check runs when a
subscription is made and again before each delivery (against what the name resolves to then).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class EndpointRefused(ValueError):
    """The endpoint may not be notified; the message says why."""


@dataclass(frozen=True)
class AllowList:
    hosts: frozenset[str]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, text: str) -> AllowList:
        hosts, networks = set(), []
        for item in (i.strip() for i in text.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    @property
    def empty(self) -> bool:
        return not self.hosts and not self.networks

    def lists_address(self, address: IPAddress) -> bool:
        address = _unmapped(address)
        return any(address.version == n.version and address in n for n in self.networks)


def check_uri(uri: str) -> tuple[str, int]:
    """(host, port) of an http(s) endpoint URI; EndpointRefused for anything else."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        raise EndpointRefused("notification.endpoint.uri must be an http:// or https:// URL")
    if not parts.hostname:
        raise EndpointRefused("notification.endpoint.uri has no host")
    if parts.username or parts.password:
        raise EndpointRefused("notification.endpoint.uri may not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise EndpointRefused("notification.endpoint.uri has a bad port") from None
    return parts.hostname.lower().rstrip("."), port


def check_addresses(host: str, addresses: list[IPAddress], allow: AllowList) -> None:
    """EndpointRefused unless ``host`` (resolving to ``addresses``) may be notified."""
    if host in allow.hosts:
        return
    if not addresses:
        raise EndpointRefused(f"{host} does not resolve")
    for address in addresses:
        if allow.lists_address(address):
            continue
        if not allow.empty:
            raise EndpointRefused(f"{host} ({address}) is not in CITYPARK_NOTIFY_ALLOW")
        if not _public(address):
            raise EndpointRefused(f"{host} resolves to {address}, a loopback or private address; "
                                  "list it in CITYPARK_NOTIFY_ALLOW to allow it")


async def check(uri: str, allow: AllowList) -> None:
    """The whole check of one endpoint URI: syntax, resolution, addresses."""
    host, port = check_uri(uri)
    if host in allow.hosts:
        return
    check_addresses(host, await resolve(host, port), allow)


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}, key=str)


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _public(address: IPAddress) -> bool:
    address = _unmapped(address)
    return address.is_global and not address.is_multicast

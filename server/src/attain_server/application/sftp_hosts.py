"""The operator's allow-list of SFTP hosts: host-name globs and networks (SPEC section 6).

A host passes when its name matches a glob entry, or when every address it resolves to lies
inside a network entry. The check returns the addresses it looked at, and the worker connects
to those: a second lookup could answer differently (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from fnmatch import fnmatchcase

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_SECONDS = 10.0
_GLOB = re.compile(r"^[a-z0-9*?_.-]+$")


class HostNotAllowed(Exception):
    """The host is outside the operator's list; the message is safe to show and log."""


class HostUnresolvable(Exception):
    """The host name does not resolve (now); the message is safe to show and log."""


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1 on the wire
    return address


def _name(host: str) -> str:
    return host.lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class HostPolicy:
    globs: tuple[str, ...] = ()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, text: str) -> HostPolicy:
        """From the setting's text; a ValueError names the entry that cannot be used."""
        globs: list[str] = []
        networks: list[Network] = []
        for entry in (e.strip() for e in text.split(",")):
            if not entry:
                continue
            if "/" in entry or _address(entry) is not None:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=True))
                except ValueError as exc:
                    raise ValueError(f"ATTAIN_SFTP_ALLOWED_HOSTS: {entry!r}: {exc}") from None
            elif _GLOB.match(_name(entry)):
                globs.append(_name(entry))
            else:
                raise ValueError(
                    f"ATTAIN_SFTP_ALLOWED_HOSTS: {entry!r} is neither a network such as "
                    "10.20.0.0/16 nor a host-name glob such as *.sftp.example.com"
                )
        return cls(tuple(globs), tuple(networks))

    @property
    def open(self) -> bool:
        """No list: every host is allowed."""
        return not self.globs and not self.networks

    def name_allowed(self, host: str) -> bool:
        return _address(host) is None and any(fnmatchcase(_name(host), g) for g in self.globs)

    def address_allowed(self, address: str) -> bool:
        parsed = _address(address)
        return parsed is not None and any(parsed in network for network in self.networks)


async def resolve(host: str, port: int) -> list[str]:
    """The host's addresses for a TCP connection, in the resolver's order."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_SECONDS
        )
    except (OSError, UnicodeError, TimeoutError):
        raise HostUnresolvable(f"{host} does not resolve") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def allowed_addresses(policy: HostPolicy, host: str, port: int) -> list[str]:
    """The addresses to connect to for ``host``, each one passed by ``policy``. The refusal
    names the address that failed: it is for the operator's log."""
    addresses = await resolve(host, port)
    if policy.open or policy.name_allowed(host):
        return addresses
    outside = [a for a in addresses if not policy.address_allowed(a)]
    if outside or not addresses:
        where = f" (it resolves to {outside[0]})" if outside and outside[0] != host else ""
        raise HostNotAllowed(f"{host} is not among the hosts the operator allows{where}")
    return addresses


async def host_allowed(policy: HostPolicy, host: str, port: int) -> bool:
    """Whether ``host`` passes (for a settings check). The caller learns yes or no only: what
    a name resolves to inside the operator's network is not the brand's to read."""
    if policy.open or policy.name_allowed(host):
        return True
    try:
        await allowed_addresses(policy, host, port)
    except (HostNotAllowed, HostUnresolvable):
        return False
    return True

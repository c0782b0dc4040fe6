"""Outbound HTTP that never reaches private addresses (SSRF guard), for every URL the server
fetches on a user's behalf: webhook deliveries, image import by URL, and a GPU worker reading
the image of an item that references an https URL (--no-copy). One implementation for both
sides: here in worker/ (no Django), used by labeler.net_safety with the web side's setting.

A URL is refused unless every address its host resolves to is public (not private, loopback,
link-local, reserved, multicast, shared or unspecified, IPv4-mapped forms included). The request
then connects to the address that was checked, not to a fresh lookup of the name, so a DNS answer
that changes between check and connect (DNS rebinding) gains nothing; the name is still sent as
Host and TLS SNI and the certificate is verified against it. Redirects are followed here, one hop
at a time, each new URL checked the same way.

``LABELER_ALLOW_PRIVATE_URLS`` (the environment here, ``settings.LABELER_ALLOW_PRIVATE_URLS`` on
the web side) lifts the address check (an admin's choice, e.g. for a webhook receiver inside the
company network).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import urllib3

REDIRECTS = {301, 302, 303, 307, 308}
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeURL(ValueError):
    """A URL the server will not fetch; the message says why, for the user."""


class FetchError(ValueError):
    """The fetch failed (connection, timeout, too large); the message is for the user."""


@dataclass
class Fetched:
    status: int
    body: bytes
    url: str
    headers: dict[str, str] = field(default_factory=dict)


def is_public(address: Address) -> bool:
    """Whether `address` is an ordinary Internet address (IPv4-mapped IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (`address`) and what to call the host."""

    scheme: str
    host: str
    port: int
    address: str
    path: str


def private_allowed_by_env() -> bool:
    """The worker's reading of LABELER_ALLOW_PRIVATE_URLS (as labeler.envvars.env_bool)."""
    value = os.environ.get("LABELER_ALLOW_PRIVATE_URLS", "").strip().lower()
    return value in {"1", "true", "yes", "on"}


def check_url(url: str, *, allow_private: bool | None = None) -> Target:
    """The URL's target if it may be fetched; else UnsafeURL saying why."""
    if allow_private is None:
        allow_private = private_allowed_by_env()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"Not a valid URL: {exc}.") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("Only http:// and https:// URLs can be fetched.")
    host = parts.hostname
    if not host:
        raise UnsafeURL("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeURL("URLs with a user name or password are not fetched.")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL(f"The host {host!r} could not be resolved.") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise UnsafeURL(f"The host {host!r} has no address.")
    if not allow_private:
        bad = [a for a in addresses if not is_public(a)]
        if bad:
            raise UnsafeURL(
                f"The host {host!r} resolves to a private, loopback, link-local or reserved "
                f"address ({bad[0]}): refused."
            )
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return Target(parts.scheme, host, port, str(addresses[0]), path)


def _pool(target: Target, timeout: float) -> urllib3.HTTPConnectionPool:
    """A connection pool to the checked address, naming the host for Host, SNI and the cert."""
    options = {"timeout": urllib3.Timeout(connect=timeout, read=timeout), "retries": False,
               "maxsize": 1}
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            target.address, target.port, server_hostname=target.host,
            assert_hostname=target.host, cert_reqs="CERT_REQUIRED", **options,
        )
    return urllib3.HTTPConnectionPool(target.address, target.port, **options)


def _host_header(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def fetch(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    max_bytes: int = 10 * 1024 * 1024,
    max_redirects: int = 5,
    allow_private: bool | None = None,
) -> Fetched:
    """Fetch `url` safely (see the module's docstring). Redirects: 307/308 keep the method and
    body, 301/302/303 turn into a GET, as browsers do. Raises UnsafeURL or FetchError."""
    for _ in range(max_redirects + 1):
        target = check_url(url, allow_private=allow_private)
        sent = {"User-Agent": "labeler", **(headers or {}), "Host": _host_header(target)}
        pool = _pool(target, timeout)
        try:
            response = pool.urlopen(
                method, target.path, body=body, headers=sent, redirect=False,
                preload_content=False, assert_same_host=False,
            )
            data = response.read(max_bytes + 1, decode_content=True)
            response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            raise FetchError(f"Could not fetch {url}: {type(exc).__name__}.") from exc
        finally:
            pool.close()
        if len(data) > max_bytes:
            raise FetchError(f"{url} sent more than {max_bytes // (1024 * 1024)} MB.")
        location = response.headers.get("Location")
        if response.status in REDIRECTS and location:
            url = urljoin(url, location)
            if response.status in (301, 302, 303):
                method, body = "GET", None
            continue
        return Fetched(response.status, data, url, dict(response.headers))
    raise FetchError(f"More than {max_redirects} redirects.")

"""Which hosts the ``stac`` source talks to: origins of URLs and the host lists.

:func:`url_origin` takes an http(s) URL to its (scheme, host, port) and refuses anything
else (a local path, ``file://``, a GDAL ``/vsi`` path); :class:`HostRule` is one entry of
``stac.token_hosts`` or ``stac.asset_hosts``; :class:`HostPolicy` says where the bearer token
goes (the API's own origin and ``token_hosts``) and which COG hrefs may be read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from cloudfree.errors import ConfigError

DEFAULT_PORTS = {"http": 80, "https": 443}


class HostSettings(Protocol):
    """The keys of the ``stac`` section that say which hosts are trusted (a StacSpec)."""

    @property
    def url(self) -> str: ...
    @property
    def token_hosts(self) -> Sequence[str]: ...
    @property
    def asset_hosts(self) -> Sequence[str]: ...


Origin = tuple[str, str, int]  # scheme, host (lower case), port


def url_origin(url: str) -> Origin | None:
    """(scheme, host, port) of an http(s) URL with a host; None for anything else (a local
    path, ``file://``, a GDAL ``/vsi`` path, ``s3://``, a relative href)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number or out of range
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def host_port(url: str) -> str:
    """``host:port`` of a URL, for messages (the URL itself when it has no host)."""
    origin = url_origin(url)
    return f"{origin[1]}:{origin[2]}" if origin else repr(url)


@dataclass(frozen=True)
class HostRule:
    """One entry of ``stac.token_hosts`` or ``stac.asset_hosts``: ``host`` (on the default
    port of http or https), ``host:port``, or ``*.domain`` for every subdomain of domain."""

    host: str
    port: int | None

    @classmethod
    def parse(cls, entry: str, key: str) -> HostRule:
        text = str(entry).strip().lower()
        wildcard = text.startswith("*.")
        try:
            parts = urlsplit("//" + (text[2:] if wildcard else text))
            port = parts.port
        except ValueError:
            parts, port = None, None
        if (
            parts is None
            or not parts.hostname
            or parts.netloc != text[2 if wildcard else 0 :]
            or "@" in text
            or "*" in parts.netloc
        ):
            raise ConfigError(f"{key}: {entry!r} is not a host name (host, host:port or *.domain)")
        return cls(("*." if wildcard else "") + parts.hostname, port)

    def matches(self, origin: Origin) -> bool:
        scheme, host, port = origin
        if port != (DEFAULT_PORTS[scheme] if self.port is None else self.port):
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host


@dataclass(frozen=True)
class HostPolicy:
    """Where the bearer token goes and where COGs may come from.  The token goes to the
    API's own origin and to ``token_hosts`` (over https, unless the API is plain http); COG
    hrefs must be http(s) URLs, on the API's origin, ``token_hosts`` or ``asset_hosts`` when
    ``asset_hosts`` is not empty."""

    api: Origin
    token_hosts: tuple[HostRule, ...]
    asset_hosts: tuple[HostRule, ...]
    where: str = "stac"  # the section's key in messages

    @classmethod
    def of(cls, spec: HostSettings, where: str = "stac") -> HostPolicy:
        api = url_origin(spec.url)
        if api is None:
            raise ConfigError(f"{where}.url: {spec.url!r} is not an http(s) URL of a STAC API")
        return cls(
            api,
            tuple(HostRule.parse(h, f"{where}.token_hosts") for h in spec.token_hosts),
            tuple(HostRule.parse(h, f"{where}.asset_hosts") for h in spec.asset_hosts),
            where,
        )

    def is_api(self, url: str) -> bool:
        return url_origin(url) == self.api

    def gets_token(self, url: str) -> bool:
        """The API's own origin, or a ``token_hosts`` entry over https: the token never goes
        unencrypted to another host unless the API itself is plain http (a local server)."""
        origin = url_origin(url)
        if origin is None:
            return False
        if origin == self.api:
            return True
        encrypted = origin[0] == "https" or self.api[0] == "http"
        return encrypted and any(r.matches(origin) for r in self.token_hosts)

    def asset_problem(self, href: str) -> str | None:
        """Why a COG href may not be read (None: it may)."""
        origin = url_origin(href)
        if origin is None:
            return (
                "is not an http(s) URL; a catalogue's asset is read over HTTP only, never as a "
                "local path, file:// URL or GDAL /vsi path"
            )
        if not self.asset_hosts or self.gets_token(href):
            return None
        if any(r.matches(origin) for r in self.asset_hosts):
            return None
        return (
            f"is on {origin[1]}:{origin[2]}, which is neither the API's host nor in "
            f"{self.where}.token_hosts or {self.where}.asset_hosts"
        )

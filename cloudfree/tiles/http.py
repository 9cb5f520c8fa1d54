"""HTTP access of the ``stac`` source: retries, tokens and signed URLs, secrets kept secret.

Each HTTP request has one retry layer, ``stac.retries`` retries with backoff: urllib3's for
the API and token requests, GDAL's own for the range requests of an asset read
(:func:`gdal_env`; :func:`read_once` adds none on top: GDAL keeps a failed file in its cache,
so reading it again would not even ask the server); a bearer
token comes from the environment variable named by ``stac.token_env`` and goes only to the
API's own origin (scheme, host and port of ``stac.url``) and the hosts of
``stac.token_hosts`` (:class:`~cloudfree.tiles.hosts.HostPolicy`): on the API requests by a
per-request :class:`ScopedBearer`, on a COG read by :func:`gdal_auth`, a GDAL option set for
that one read.  :class:`CatalogueIO` keeps pystac-client on the API: no request to another
host, no local file, answers that are not JSON named by their URL, paging bounded by
``stac.max_pages`` and stopped where it loops (it needs pystac-client, the ``stac``
extra).  COG URLs are signed with a SAS token of the collection where the catalogue needs
it (:class:`SasSigner`); while :func:`redacted` runs, every token is replaced in the log
records, and :meth:`SasSigner.clean` cuts them out of error messages.  :func:`gdal_env`
holds GDAL's network settings.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Protocol, TypeVar

import rasterio
import requests
from pystac import Link
from rasterio.errors import RasterioError
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.util.retry import Retry

from cloudfree.errors import ConfigError, InputDataError
from cloudfree.extras import MissingExtraError, missing_extra
from cloudfree.tiles.hosts import HostPolicy, HostSettings, host_port

# pystac-client is the optional ``stac`` extra: without it this module imports and
# CatalogueIO refuses to be made, with this error.
try:
    from pystac_client.stac_api_io import StacApiIO
except ImportError as exc:
    NO_STAC_CLIENT: MissingExtraError | None = missing_extra("pystac_client", "stac")
    NO_STAC_CLIENT.__cause__ = exc
    StacApiIO = object  # type: ignore[assignment,misc]
else:
    NO_STAC_CLIENT = None

RETRY_STATUS = (429, 500, 502, 503, 504)
log = logging.getLogger(__name__)
T = TypeVar("T")


class HttpSettings(HostSettings, Protocol):
    """The keys of the ``stac`` section that say how its server is reached (a StacSpec):
    those of :class:`~cloudfree.tiles.hosts.HostSettings` and these."""

    @property
    def retries(self) -> int: ...
    @property
    def backoff(self) -> float: ...
    @property
    def timeout(self) -> float: ...
    @property
    def token_env(self) -> str | None: ...
    @property
    def collection(self) -> str: ...
    @property
    def sign_url(self) -> str: ...
    @property
    def sign_key_env(self) -> str | None: ...
    @property
    def max_pages(self) -> int: ...


SUBSCRIPTION_HEADER = "Ocp-Apim-Subscription-Key"  # Planetary Computer's token API


class ScopedBearer(AuthBase):
    """``Authorization: Bearer <token>`` on the requests whose URL ``allowed`` accepts
    only (requests drops it itself on a redirect to another host)."""

    def __init__(self, token: str | None, allowed: Callable[[str], bool]) -> None:
        self.token, self.allowed = token, allowed

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.token and request.url and self.allowed(request.url):
            request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def _href(source: Any) -> str:
    if isinstance(source, Link):
        return str(source.to_dict().get("href", ""))
    return str(source)


def _page_key(href: str, method: str | None, body: Any) -> str:
    return json.dumps([(method or "GET").upper(), href, body], sort_keys=True, default=str)


class CatalogueIO(StacApiIO):
    """pystac-client's I/O kept on the STAC API: every request goes to the API's origin
    (the token with it, no other header of ours), a local path is never opened, an answer
    that is not a JSON object is an InputDataError naming its URL, and search paging stops
    with an error after ``max_pages`` pages, at a ``next`` link to another host and at one
    that leads back to a page already read."""

    def __init__(self, spec: HttpSettings, token: str | None, where: str = "stac") -> None:
        if NO_STAC_CLIENT is not None:
            raise NO_STAC_CLIENT
        retry = Retry(
            total=spec.retries, backoff_factor=spec.backoff, status_forcelist=RETRY_STATUS,
            allowed_methods=None, raise_on_status=False,
        )  # fmt: skip
        super().__init__(max_retries=retry, timeout=spec.timeout)
        self.spec, self.where = spec, where
        self.policy = HostPolicy.of(spec, where)
        if token:
            self.session.auth = ScopedBearer(token, self.policy.gets_token)
        self.pages = 0

    def _refuse(self, href: str, what: str) -> InputDataError:
        return InputDataError(
            f"STAC API {self.spec.url}: {what} {href!r} is not on the API's host "
            f"({self.policy.api[1]}:{self.policy.api[2]}); refused, nothing of the search "
            "is sent to another host"
        )

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        href = _href(source)
        if not self.policy.is_api(href):
            raise self._refuse(href, "a link to")
        return super().read_text(source, *args, **kwargs)

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        if not self.policy.is_api(href):
            raise self._refuse(href, "a request to")
        return super().request(href, method=method, headers=headers, parameters=parameters)

    def read_json(self, source: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        href = _href(source)
        text = self.read_text(source, *args, **kwargs)
        try:
            doc = self.json_loads(text)
        except ValueError as exc:
            start = " ".join(text[:60].split())
            raise InputDataError(
                f"STAC API {self.spec.url}: the answer of {href} is not JSON ({exc}); it "
                f"starts with {start!r}"
            ) from None
        if not isinstance(doc, dict):
            raise InputDataError(
                f"STAC API {self.spec.url}: the answer of {href} is JSON but not an object "
                f"(a {type(doc).__name__})"
            )
        return doc

    def get_pages(
        self, url: str, method: str | None = None, parameters: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """The pages of a search, first to last, following ``next`` links on the API."""
        seen = {_page_key(url, method, parameters): 1}
        page = self.read_json(url, method=method, parameters=parameters)
        number = 1
        while True:
            self.pages = number
            features = page.get("features")
            if not features:
                return
            if not isinstance(features, list):
                raise InputDataError(
                    f"STAC API {self.spec.url}: page {number} of the search at {url} has "
                    f"'features' that are not a list ({type(features).__name__})"
                )
            yield page
            link = self._next_link(page, url, number)
            if link is None:
                return
            href = link["href"]
            if not self.policy.is_api(href):
                raise InputDataError(
                    f"STAC API {self.spec.url}: page {number} of the search links its next "
                    f"page to {host_port(href)} ({href}), not the API's host "
                    f"{self.policy.api[1]}:{self.policy.api[2]}; refused"
                )
            method_ = str(link.get("method", "GET")).upper()
            body = link.get("body", {})
            if method_ == "POST" and link.get("merge"):
                body = {**(parameters or {}), **body}
            key = _page_key(href, method_, body if method_ == "POST" else {})
            if key in seen:
                raise InputDataError(
                    f"STAC API {self.spec.url}: page {number} of the search links back to "
                    f"page {seen[key]} ({href}); the paging loops, stopped"
                )
            if number >= self.spec.max_pages:
                raise InputDataError(
                    f"STAC API {self.spec.url}: the search has more than {self.spec.max_pages}"
                    f" pages ({self.where}.max_pages); narrow {self.where}.bbox or the dates, "
                    f"or raise {self.where}.max_pages"
                )
            number += 1
            seen[key] = number
            page = self.read_json(Link.from_dict(link), parameters=parameters)

    def _next_link(self, page: dict[str, Any], url: str, number: int) -> dict[str, Any] | None:
        links = page.get("links") or []
        if not isinstance(links, list):
            links = []
        link = next((x for x in links if isinstance(x, dict) and x.get("rel") == "next"), None)
        if link is None:
            return None
        if not isinstance(link.get("href"), str) or not isinstance(link.get("body", {}), dict):
            raise InputDataError(
                f"STAC API {self.spec.url}: page {number} of the search at {url} has a "
                f"malformed next link {json.dumps(link, default=str)[:200]}"
            )
        return link


class SasSigner:
    """Signs asset URLs with a SAS token of the collection (Planetary Computer's token
    API: ``<sign_url>/<collection>`` answers ``{"token", "msft:expiry"}``), fetched once and
    renewed ``margin`` seconds before it expires.  Tokens join ``secrets`` (kept out of the
    logs) and are cut out of error messages by :meth:`clean`.  With ``sign_key_env``, the
    subscription key in that variable goes to the token API only, as
    ``Ocp-Apim-Subscription-Key`` (redirects are not followed: a custom header would go with
    them to any host)."""

    def __init__(self, spec: HttpSettings, secrets: set[str], margin: float = 300.0) -> None:
        self.spec, self.secrets, self.margin = spec, secrets, margin
        self.url = f"{spec.sign_url.rstrip('/')}/{spec.collection}"
        self.headers = {}
        if spec.sign_key_env:
            key = os.environ.get(spec.sign_key_env)
            if not key:
                raise ConfigError(
                    f"stac.sign_key_env: environment variable {spec.sign_key_env} is not set "
                    "or empty"
                )
            self.headers[SUBSCRIPTION_HEADER] = key
            secrets.add(key)
        self.token: str | None = None
        self.expiry = 0.0
        self.fetches = 0

    def _fetch(self) -> None:
        retry = Retry(
            total=self.spec.retries, backoff_factor=self.spec.backoff,
            status_forcelist=RETRY_STATUS, allowed_methods=None,
        )  # fmt: skip
        with requests.Session() as session:
            session.mount("http://", HTTPAdapter(max_retries=retry))
            session.mount("https://", HTTPAdapter(max_retries=retry))
            try:
                answer = session.get(self.url, timeout=self.spec.timeout,
                                     headers=self.headers, allow_redirects=False)  # fmt: skip
                answer.raise_for_status()
                if answer.is_redirect:
                    raise ValueError(f"a redirect ({answer.status_code}), not followed")
                doc = answer.json()
                token = str(doc["token"])
                expiry = datetime.fromisoformat(str(doc["msft:expiry"]).replace("Z", "+00:00"))
            except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
                raise InputDataError(
                    f"SAS token for {self.spec.collection} from {self.url} (stac.sign_url): {exc}"
                ) from exc
        self.token, self.expiry = token, expiry.timestamp()
        self.secrets.add(token)
        self.fetches += 1
        log.info("SAS token for %s valid until %s", self.spec.collection, expiry.isoformat())

    def sign(self, href: str) -> str:
        if self.token is None or time.time() > self.expiry - self.margin:
            self._fetch()
        return f"{href}{'&' if '?' in href else '?'}{self.token}"

    def clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def read_once(fn: Callable[[], T], what: str, retries: int, clean: Callable[[str], str] = str) -> T:
    """Call ``fn``, a read through GDAL, once: GDAL retries each of its HTTP requests itself
    (:func:`gdal_env`, ``retries`` times with backoff), the one retry layer of asset reads.
    A failure is an InputDataError naming ``what``; ``clean`` removes secrets."""
    try:
        return fn()
    except (RasterioError, OSError) as exc:
        tries = f"{retries + 1} time{'s' if retries else ''}"
        raise InputDataError(
            f"{what}: failed (each HTTP request tried up to {tries}): {clean(str(exc))}"
        ) from None


def bearer_token(spec: HttpSettings) -> str | None:
    """The API token from the environment variable named by ``stac.token_env``, if any."""
    if not spec.token_env:
        return None
    token = os.environ.get(spec.token_env)
    if not token:
        raise ConfigError(
            f"stac.token_env: environment variable {spec.token_env} is not set or empty"
        )
    return token


def gdal_auth(
    url: str, token: str | None, policy: HostPolicy
) -> contextlib.AbstractContextManager[Any]:
    """GDAL's options of one read of ``url``: the bearer token as a header if the URL's
    host gets it, nothing otherwise (never an option for every host)."""
    if not token or not policy.gets_token(url):
        return contextlib.nullcontext()
    return rasterio.Env(GDAL_HTTP_HEADERS=f"Authorization: Bearer {token}")


class _Redact(logging.Filter):
    """Replace secrets in every log record (pystac-client logs request headers at DEBUG)."""

    def __init__(self, secrets: set[str]) -> None:
        super().__init__()
        self.secrets = secrets  # shared: secrets found later (SAS tokens) are redacted too

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hits = [s for s in self.secrets if s and s in message]
        for secret in hits:
            message = message.replace(secret, "***")
        if hits:
            record.msg, record.args = message, None
        return True


@contextlib.contextmanager
def redacted(secrets: set[str]) -> Iterator[None]:
    """Keep ``secrets`` (a set that may grow) out of every log handler of the process while
    the block runs."""
    flt = _Redact(secrets)
    handlers = [h for lg in (logging.getLogger(), log) for h in lg.handlers]
    for h in handlers:
        h.addFilter(flt)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(flt)


def gdal_env(spec: HttpSettings) -> rasterio.Env:
    """GDAL's network settings of a run (no credentials: see :func:`gdal_auth`)."""
    return rasterio.Env(
        GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",
        CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif,.TIF,.tiff",
        GDAL_HTTP_TIMEOUT=str(int(max(1, spec.timeout))),
        # the one retry layer of asset reads (read_once does not retry on top of it)
        GDAL_HTTP_MAX_RETRY=str(spec.retries),
        GDAL_HTTP_RETRY_DELAY=str(max(spec.backoff, 0.01)),
        GDAL_HTTP_MERGE_CONSECUTIVE_RANGES="YES",
        VSI_CACHE="TRUE",
    )

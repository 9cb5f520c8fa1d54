"""HTTP access of the ``stac`` source: retries, tokens and signed URLs, secrets kept secret.

Failed GDAL/HTTP reads are retried with exponential backoff (:func:`with_retries`); a bearer
token comes from the environment variable named by ``stac.token_env``; COG URLs are signed
with a SAS token of the collection where the catalogue needs it (:class:`SasSigner`); while
:func:`redacted` runs, every token is replaced in the log records, and :meth:`SasSigner.clean`
cuts them out of error messages.  :func:`gdal_env` holds GDAL's network settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Protocol, TypeVar

import rasterio
import requests
from rasterio.errors import RasterioError
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from cloudfree.errors import ConfigError, InputDataError

RETRY_STATUS = (429, 500, 502, 503, 504)
log = logging.getLogger(__name__)
T = TypeVar("T")


class HttpSettings(Protocol):
    """The keys of the ``stac`` section that say how its server is reached (a StacSpec)."""

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


class SasSigner:
    """Signs asset URLs with a SAS token of the collection (Planetary Computer's token
    API: ``<sign_url>/<collection>`` answers ``{"token", "msft:expiry"}``), fetched once and
    renewed ``margin`` seconds before it expires.  Tokens join ``secrets`` (kept out of the
    logs) and are cut out of error messages by :meth:`clean`."""

    def __init__(self, spec: HttpSettings, secrets: set[str], margin: float = 300.0) -> None:
        self.spec, self.secrets, self.margin = spec, secrets, margin
        self.url = f"{spec.sign_url.rstrip('/')}/{spec.collection}"
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
                answer = session.get(self.url, timeout=self.spec.timeout)
                answer.raise_for_status()
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


def with_retries(
    fn: Callable[[], T],
    what: str,
    retries: int,
    backoff: float,
    clean: Callable[[str], str] = str,
) -> T:
    """Call ``fn``; on a GDAL/HTTP error wait ``backoff * 2**k`` s and try again.
    ``clean`` removes secrets (signed URLs) from the messages."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except (RasterioError, OSError) as exc:
            text = clean(str(exc))
            if attempt == retries:
                tries = f"{retries + 1} attempt{'s' if retries else ''}"
                raise InputDataError(f"{what}: failed after {tries}: {text}") from None
            delay = backoff * 2**attempt
            log.warning("%s: %s; retrying in %.1f s", what, text, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


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


def auth_headers(spec: HttpSettings) -> dict[str, str]:
    token = bearer_token(spec)
    return {"Authorization": f"Bearer {token}"} if token else {}


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
    headers = auth_headers(spec)
    extra = {"GDAL_HTTP_HEADERS": f"Authorization: {headers['Authorization']}"} if headers else {}
    return rasterio.Env(
        **extra,
        GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",
        CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif,.TIF,.tiff",
        GDAL_HTTP_TIMEOUT=str(int(max(1, spec.timeout))),
        GDAL_HTTP_MAX_RETRY=str(spec.retries),
        GDAL_HTTP_RETRY_DELAY=str(max(spec.backoff, 0.01)),
        GDAL_HTTP_MERGE_CONSECUTIVE_RANGES="YES",
        VSI_CACHE="TRUE",
    )

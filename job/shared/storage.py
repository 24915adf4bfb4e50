"""Where a broadcast's runs, page and memory are kept, shared by the stages that write there (job/publish/ and
job/memory/) without either importing the other: files replaced atomically and durably in a directory, and the
bucket's client with the run's credentials, bounded timeouts and retries, and errors that say what to fix.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from api.v1alpha1 import S3Output
from job.model import ConfigError, JobError, TransientError

# Bounded so a dead or stalled endpoint fails the run within about a minute instead of minio's 5 minutes a
# request; the Job is retried anyway on a TransientError.
_S3_TIMEOUT = urllib3.Timeout(connect=10.0, read=60.0)
_S3_RETRIES = urllib3.Retry(
    total=3, backoff_factor=0.2, backoff_max=5.0, status_forcelist=(500, 502, 503, 504), raise_on_status=False
)
_CREDENTIAL_CODES = frozenset(
    {"SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken", "InvalidClientTokenId"}
)
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "XMinioServerNotInitialized"}
)


def replace_file(path: Path, data: bytes, *, temporary_prefix: str, mode: int = 0o644) -> None:
    """Replace the file at `path` with `data` atomically and durably: a reader sees the old file or the new one,
    never part of one, and a crash after the return keeps the new one. The data goes to a temporary file beside
    it (named `temporary_prefix` and 8 random characters, removed on failure), is synced, given `mode` (mkstemp's
    0600 would hide it from a web server's user), renamed over `path`, and the directory synced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=temporary_prefix, dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        Path(temporary).chmod(mode)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(path: Path) -> None:
    """Make renames and new entries in a directory survive a crash."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None

    def redact(self, text: str) -> str:
        for secret in (self.secret_key, self.session_token, self.access_key):
            if secret:
                text = text.replace(secret, "***")
        return text


def credentials(env: Mapping[str, str]) -> Credentials:
    """ANCHOR_S3_* (what the controller passes from the Secret), else the usual AWS_* pair; never mixed."""
    access, secret = env.get("ANCHOR_S3_ACCESS_KEY_ID"), env.get("ANCHOR_S3_SECRET_ACCESS_KEY")
    if access or secret:
        if access and secret:
            return Credentials(access, secret)
        missing = "ANCHOR_S3_SECRET_ACCESS_KEY" if access else "ANCHOR_S3_ACCESS_KEY_ID"
        raise ConfigError(f"{missing} is not set: S3 credentials need both ANCHOR_S3_ACCESS_KEY_ID and {missing}")
    access, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if access and secret:
        return Credentials(access, secret, env.get("AWS_SESSION_TOKEN") or None)
    raise ConfigError(
        "no S3 credentials: set ANCHOR_S3_ACCESS_KEY_ID and ANCHOR_S3_SECRET_ACCESS_KEY (in a cluster the "
        "controller sets them from the Secret named in spec.output.s3.credentials), or AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY"
    )


def client(s3: S3Output, credentials: Credentials, env: Mapping[str, str]) -> Minio:
    http = urllib3.PoolManager(
        timeout=_S3_TIMEOUT,
        retries=_S3_RETRIES,
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=env.get("SSL_CERT_FILE") or certifi.where(),
    )
    return Minio(
        s3.endpoint,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        session_token=credentials.session_token,
        secure=s3.secure,
        region=s3.region,
        http_client=http,
    )


def s3_client(s3: S3Output, env: Mapping[str, str] = os.environ) -> Minio:
    """A client for the output's bucket with the run's credentials (job/memory/state.py keeps the broadcast's state
    there)."""
    return client(s3, credentials(env), env)


def s3_errors(s3: S3Output, env: Mapping[str, str], context: str) -> contextlib.AbstractContextManager[None]:
    """The store's error mapping for other writers into the output's bucket (job/publish/site.py): the client's errors
    become ConfigError/TransientError that say what to fix, with `context` after, and no secret in them."""
    return errors(s3, credentials(env), context)


@contextlib.contextmanager
def errors(s3: S3Output, credentials: Credentials, context: str) -> Iterator[None]:
    """Turn the client's errors into ConfigError/TransientError that say what to fix and where the run stands."""
    try:
        yield
    except JobError:
        raise
    except (MinioException, ElementTree.ParseError, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
        failure = _s3_failure(exc, s3)
        message = credentials.redact(f"{failure}; {context}")
        raise type(failure)(message) from None


def _s3_failure(exc: Exception, s3: S3Output) -> JobError:
    endpoint, bucket = s3.endpoint, s3.bucket
    secret_hint = (
        f"check the Secret {s3.credentials.secret_name!r} named in spec.output.s3.credentials"
        if s3.credentials
        else "check the Secret named in spec.output.s3.credentials (ANCHOR_S3_ACCESS_KEY_ID / "
        "ANCHOR_S3_SECRET_ACCESS_KEY)"
    )
    if isinstance(exc, S3Error):
        code = exc.code or "unknown"
        status = exc.response.status if exc.response is not None else 0
        if code in _CREDENTIAL_CODES:
            return ConfigError(f"S3 credentials were rejected by {endpoint} ({code}): {secret_hint}")
        if code == "AccessDenied":
            return ConfigError(
                f"access to bucket {bucket!r} on {endpoint} was denied (AccessDenied): the S3 credentials are "
                f"wrong or may not list, read, write and delete objects there; {secret_hint}"
            )
        if code == "NoSuchBucket":
            return ConfigError(f"bucket {bucket!r} does not exist on {endpoint} (spec.output.s3.bucket)")
        if code == "InvalidBucketName":
            return ConfigError(f"{endpoint} does not accept {bucket!r} as a bucket name (spec.output.s3.bucket)")
        if code in ("AuthorizationHeaderMalformed", "InvalidRegion", "IllegalLocationConstraintException"):
            return ConfigError(
                f"{endpoint} expects another region for bucket {bucket!r} ({code}): set spec.output.s3.region"
            )
        if code in _TRANSIENT_CODES or status >= 500:
            return TransientError(f"S3 endpoint {endpoint} failed ({code}: {exc.message})")
        return ConfigError(f"S3 endpoint {endpoint} refused the request ({code}: {exc.message})")
    if isinstance(exc, ServerError):
        if exc.status_code >= 500:
            return TransientError(f"S3 endpoint {endpoint} failed with HTTP status {exc.status_code}")
        return ConfigError(f"S3 endpoint {endpoint} answered HTTP status {exc.status_code}")
    if isinstance(exc, ElementTree.ParseError):  # a 200 answer that is not S3's XML
        return ConfigError(
            f"{endpoint} did not answer as an S3 API: check spec.output.s3.endpoint and spec.output.s3.secure"
        )
    if isinstance(exc, InvalidResponseError):
        # minio keeps the status only in the message; a 5xx page from a proxy is worth retrying, anything else
        # means the endpoint is not an S3 API.
        if "Response code: 5" in str(exc):
            return TransientError(f"S3 endpoint {endpoint} answered with a server error page")
        return ConfigError(
            f"{endpoint} did not answer as an S3 API: check spec.output.s3.endpoint and spec.output.s3.secure"
        )
    reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    if isinstance(reason, urllib3.exceptions.SSLError):
        return ConfigError(
            f"TLS to {endpoint} failed ({type(reason).__name__}): if the server speaks plain HTTP, set "
            "spec.output.s3.secure to false; otherwise check its certificate (SSL_CERT_FILE can name extra CA "
            "certificates)"
        )
    return TransientError(f"cannot reach S3 endpoint {endpoint}: {_describe(reason)}")


def _describe(reason: BaseException | None) -> str:
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        # Its text starts with the connection object's repr; the OS's reason follows the last ": ".
        return f"{str(reason).rsplit(': ', 1)[-1]} (is the server up, and is spec.output.s3.endpoint right?)"
    if isinstance(reason, urllib3.exceptions.TimeoutError):
        return "timed out"
    if isinstance(reason, urllib3.exceptions.ResponseError):
        return "the server kept answering with errors"
    return type(reason).__name__ if reason is not None else "unknown error"

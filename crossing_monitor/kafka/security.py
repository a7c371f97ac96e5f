"""How to talk to a Kafka cluster that wants TLS and/or SASL: settings from the environment.

A port's own cluster rarely speaks plaintext. These variables say how to reach it; every Kafka
client of the project (worker, simulate, record, replay, the topic admin) takes the same ones:

    CROSSING_MONITOR_KAFKA_SECURITY_PROTOCOL  PLAINTEXT (default) | SSL | SASL_PLAINTEXT | SASL_SSL
    CROSSING_MONITOR_KAFKA_SASL_MECHANISM     PLAIN (default with SASL) | SCRAM-SHA-256 | SCRAM-SHA-512
    CROSSING_MONITOR_KAFKA_SASL_USERNAME      required with SASL_*
    CROSSING_MONITOR_KAFKA_SASL_PASSWORD      required with SASL_*
    CROSSING_MONITOR_KAFKA_SSL_CAFILE         PEM bundle of the CAs that signed the brokers (default: the system's)
    CROSSING_MONITOR_KAFKA_SSL_CERTFILE       client certificate (PEM), for brokers that require one (mTLS)
    CROSSING_MONITOR_KAFKA_SSL_KEYFILE        the client certificate's key (PEM), if not inside CERTFILE

An empty variable counts as unset (Compose passes `${VAR:-}` as an empty string). A setting that
cannot work raises UserError with one line naming the variable, so the command stops before it
connects: an unknown protocol or mechanism, SASL without its username or password, TLS files with
a protocol that does not use TLS, SASL settings with one that does not use SASL, a file that cannot
be read or is not PEM.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crossing_monitor.errors import UserError

__all__ = ["ENV", "MECHANISMS", "PROTOCOLS", "KafkaSecurity"]

PREFIX = "CROSSING_MONITOR_KAFKA_"
ENV = {
    "protocol": PREFIX + "SECURITY_PROTOCOL",
    "sasl_mechanism": PREFIX + "SASL_MECHANISM",
    "sasl_username": PREFIX + "SASL_USERNAME",
    "sasl_password": PREFIX + "SASL_PASSWORD",
    "ssl_cafile": PREFIX + "SSL_CAFILE",
    "ssl_certfile": PREFIX + "SSL_CERTFILE",
    "ssl_keyfile": PREFIX + "SSL_KEYFILE",
}
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
DEFAULT_MECHANISM = "PLAIN"


@dataclass(frozen=True)
class KafkaSecurity:
    """The security settings of every Kafka connection; the default is plaintext, no auth."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def __post_init__(self) -> None:
        self._validate()

    # ---- reading ---------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KafkaSecurity:
        """The settings of `environ` (default: os.environ); UserError if they cannot work."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(ENV[name], "")
            return value.strip() or None

        protocol = (get("protocol") or "PLAINTEXT").upper()
        mechanism = get("sasl_mechanism")
        password = env.get(ENV["sasl_password"]) or None  # spaces may be part of a password
        security = cls(
            protocol=protocol,
            sasl_mechanism=mechanism.upper() if mechanism else None,
            sasl_username=get("sasl_username"),
            sasl_password=password,
            ssl_cafile=get("ssl_cafile"),
            ssl_certfile=get("ssl_certfile"),
            ssl_keyfile=get("ssl_keyfile"),
        )
        security.ssl_context()  # a CA or key file that is not PEM fails here, not at the first connection
        return security

    # ---- what it means ---------------------------------------------------------------------

    @property
    def uses_ssl(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def mechanism(self) -> str | None:
        """The SASL mechanism in use (PLAIN unless set), None without SASL."""
        return (self.sasl_mechanism or DEFAULT_MECHANISM) if self.uses_sasl else None

    def describe(self) -> str:
        """One line for logs, without the password: 'SASL_SSL, SCRAM-SHA-512 as monitor'."""
        parts = [self.protocol]
        if self.uses_sasl:
            parts.append(f"{self.mechanism} as {self.sasl_username}")
        if self.uses_ssl:
            parts.append(f"CA {self.ssl_cafile}" if self.ssl_cafile else "system CAs")
            if self.ssl_certfile:
                parts.append(f"client certificate {self.ssl_certfile}")
        return ", ".join(parts)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context (hostname checked, certificates verified), None without TLS."""
        if not self.uses_ssl:
            return None
        from aiokafka.helpers import create_ssl_context

        try:
            return create_ssl_context(cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile)
        except ssl.SSLError as exc:
            files = ", ".join(
                f"{ENV[name]}={value}"
                for name, value in (
                    ("ssl_cafile", self.ssl_cafile),
                    ("ssl_certfile", self.ssl_certfile),
                    ("ssl_keyfile", self.ssl_keyfile),
                )
                if value
            )
            raise UserError(f"cannot build the Kafka TLS context from {files or 'the system CAs'}: {exc}") from None
        except OSError as exc:  # a file that went away since it was checked
            raise UserError(f"cannot read a Kafka TLS file: {exc}") from None

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_sasl:
            kwargs["sasl_mechanism"] = self.mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        if self.uses_ssl:
            kwargs["ssl_context"] = self.ssl_context()
        return kwargs

    def faust_credentials(self) -> Any:
        """`broker_credentials` for faust.App: None for PLAINTEXT, else SASLCredentials or SSLCredentials."""
        if self.protocol == "PLAINTEXT":
            return None
        from faust.auth import SASLCredentials, SSLCredentials

        if self.uses_sasl:
            return SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password,
                mechanism=self.mechanism,
                ssl_context=self.ssl_context(),  # None for SASL_PLAINTEXT; a context makes it SASL_SSL
            )
        return SSLCredentials(self.ssl_context())

    # ---- checks ----------------------------------------------------------------------------

    def _validate(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise UserError(f"{ENV['protocol']} must be one of {', '.join(PROTOCOLS)}, not {self.protocol!r}")
        if self.sasl_mechanism is not None and self.sasl_mechanism not in MECHANISMS:
            raise UserError(
                f"{ENV['sasl_mechanism']} must be one of {', '.join(MECHANISMS)}, not {self.sasl_mechanism!r}"
            )
        if self.uses_sasl:
            for name in ("sasl_username", "sasl_password"):
                if not getattr(self, name):
                    raise UserError(f"{ENV['protocol']}={self.protocol} needs {ENV[name]}")
        else:
            stray = [ENV[n] for n in ("sasl_mechanism", "sasl_username", "sasl_password") if getattr(self, n)]
            if stray:
                raise UserError(
                    f"{', '.join(stray)} set but {ENV['protocol']}={self.protocol} does not use SASL "
                    "(use SASL_SSL or SASL_PLAINTEXT)"
                )
        files = [n for n in ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if getattr(self, n)]
        if files and not self.uses_ssl:
            raise UserError(
                f"{', '.join(ENV[n] for n in files)} set but {ENV['protocol']}={self.protocol} does not use TLS "
                "(use SSL or SASL_SSL)"
            )
        if self.ssl_keyfile and not self.ssl_certfile:
            raise UserError(f"{ENV['ssl_keyfile']} is set without {ENV['ssl_certfile']}")
        for name in files:
            _check_readable(ENV[name], getattr(self, name))


def _check_readable(variable: str, path: str) -> None:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except IsADirectoryError:
        raise UserError(f"{variable}={path} is a directory, not a PEM file") from None
    except OSError as exc:
        raise UserError(f"{variable}={path} cannot be read: {exc.strerror or exc}") from None

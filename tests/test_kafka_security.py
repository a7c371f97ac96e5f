"""Kafka TLS/SASL settings from the environment (crossing_monitor.kafka.security): what each setting
turns into for aiokafka and for Faust, and one clear line for every setting that cannot work."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from crossing_monitor.errors import UserError
from crossing_monitor.kafka.security import ENV, MECHANISMS, KafkaSecurity

P = "CROSSING_MONITOR_KAFKA_"
OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")


def _keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed EC certificate and its key (PEM), made by the openssl command."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            OPENSSL,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if OPENSSL is None:
        pytest.skip("openssl command not installed")
    d = tmp_path_factory.mktemp("pki")
    ca, ca_key = _keypair(d, "ca")
    client, client_key = _keypair(d, "client")
    other, other_key = _keypair(d, "other")
    combined = d / "combined.pem"
    combined.write_bytes(client.read_bytes() + client_key.read_bytes())
    garbage = d / "garbage.pem"
    garbage.write_text("this is not a certificate\n")
    return {
        "ca": ca,
        "client": client,
        "client_key": client_key,
        "other_key": other_key,
        "combined": combined,
        "garbage": garbage,
        "dir": d,
    }


def _error(env: dict[str, str]) -> str:
    with pytest.raises(UserError) as info:
        KafkaSecurity.from_env(env)
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    return message


# ---- defaults and plain values -------------------------------------------------------------


def test_nothing_set_is_plaintext_without_auth():
    security = KafkaSecurity.from_env({})
    assert security == KafkaSecurity()
    assert security.protocol == "PLAINTEXT" and not security.uses_ssl and not security.uses_sasl
    assert security.aiokafka_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert security.faust_credentials() is None
    assert security.ssl_context() is None
    assert security.describe() == "PLAINTEXT"


def test_empty_variables_count_as_unset():
    """Compose passes `${VAR:-}` as an empty string."""
    env = {name: "" for name in ENV.values()}
    env[P + "SECURITY_PROTOCOL"] = "  "
    assert KafkaSecurity.from_env(env) == KafkaSecurity()


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch):
    for name in ENV.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(P + "SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv(P + "SASL_USERNAME", "monitor")
    monkeypatch.setenv(P + "SASL_PASSWORD", "pw")
    assert KafkaSecurity.from_env().sasl_username == "monitor"


def test_the_documented_variable_names():
    assert sorted(ENV.values()) == sorted(
        P + n
        for n in (
            "SECURITY_PROTOCOL",
            "SASL_MECHANISM",
            "SASL_USERNAME",
            "SASL_PASSWORD",
            "SSL_CAFILE",
            "SSL_CERTFILE",
            "SSL_KEYFILE",
        )
    )


def test_protocol_and_mechanism_are_case_insensitive():
    security = KafkaSecurity.from_env(
        {
            P + "SECURITY_PROTOCOL": "sasl_plaintext",
            P + "SASL_MECHANISM": "scram-sha-256",
            P + "SASL_USERNAME": "monitor",
            P + "SASL_PASSWORD": "pw",
        }
    )
    assert security.protocol == "SASL_PLAINTEXT" and security.mechanism == "SCRAM-SHA-256"


def test_settings_are_frozen():
    security = KafkaSecurity()
    with pytest.raises(FrozenInstanceError):
        security.protocol = "SSL"  # type: ignore[misc]


# ---- SASL ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_sasl_plaintext(mechanism: str):
    from faust.auth import SASLCredentials
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
    from faust.types.auth import AuthProtocol, SASLMechanism

    security = KafkaSecurity.from_env(
        {
            P + "SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            P + "SASL_MECHANISM": mechanism,
            P + "SASL_USERNAME": "monitor",
            P + "SASL_PASSWORD": "s3cret pass",
        }
    )
    assert security.aiokafka_kwargs() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "monitor",
        "sasl_plain_password": "s3cret pass",
    }
    creds = security.faust_credentials()
    assert isinstance(creds, SASLCredentials)
    assert creds.protocol is AuthProtocol.SASL_PLAINTEXT and creds.mechanism is SASLMechanism(mechanism)
    # What Faust hands to aiokafka is what aiokafka_kwargs() gives the project's own clients.
    assert credentials_to_aiokafka_auth(creds) == {**security.aiokafka_kwargs(), "ssl_context": None}


def test_sasl_mechanism_defaults_to_plain():
    security = KafkaSecurity.from_env(
        {P + "SECURITY_PROTOCOL": "SASL_PLAINTEXT", P + "SASL_USERNAME": "u", P + "SASL_PASSWORD": "p"}
    )
    assert security.mechanism == "PLAIN" and security.aiokafka_kwargs()["sasl_mechanism"] == "PLAIN"


def test_the_password_never_shows():
    security = KafkaSecurity.from_env(
        {
            P + "SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            P + "SASL_MECHANISM": "SCRAM-SHA-512",
            P + "SASL_USERNAME": "monitor",
            P + "SASL_PASSWORD": "hunter2-very-secret",
        }
    )
    for text in (repr(security), str(security), security.describe(), repr(security.faust_credentials())):
        assert "hunter2" not in text
    assert security.describe() == "SASL_PLAINTEXT, SCRAM-SHA-512 as monitor"


def test_kwargs_are_accepted_by_every_aiokafka_client():
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    security = KafkaSecurity.from_env(
        {
            P + "SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            P + "SASL_MECHANISM": "SCRAM-SHA-512",
            P + "SASL_USERNAME": "monitor",
            P + "SASL_PASSWORD": "pw",
        }
    )

    async def build() -> list[str]:
        kwargs = security.aiokafka_kwargs()
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", **kwargs)
        consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9", **kwargs)
        admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9", **kwargs)
        seen = [c._sasl_mechanism for c in (producer.client, consumer._client, admin._client)]
        await producer.stop()
        await consumer.stop()
        await admin.close()
        return seen

    assert asyncio.run(build()) == ["SCRAM-SHA-512"] * 3


# ---- TLS -----------------------------------------------------------------------------------


@needs_openssl
def test_ssl_with_a_ca_file(pki: dict[str, Path]):
    from faust.auth import SSLCredentials
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    security = KafkaSecurity.from_env({P + "SECURITY_PROTOCOL": "SSL", P + "SSL_CAFILE": str(pki["ca"])})
    kwargs = security.aiokafka_kwargs()
    assert set(kwargs) == {"security_protocol", "ssl_context"} and kwargs["security_protocol"] == "SSL"
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any(ca["subject"] == ((("commonName", "ca"),),) for ca in context.get_ca_certs())
    creds = security.faust_credentials()
    assert isinstance(creds, SSLCredentials)
    faust_kwargs = credentials_to_aiokafka_auth(creds)
    assert faust_kwargs["security_protocol"] == "SSL" and isinstance(faust_kwargs["ssl_context"], ssl.SSLContext)
    assert security.describe() == f"SSL, CA {pki['ca']}"


def test_ssl_without_a_ca_file_uses_the_system_cas():
    security = KafkaSecurity.from_env({P + "SECURITY_PROTOCOL": "SSL"})
    assert isinstance(security.ssl_context(), ssl.SSLContext)
    assert security.describe() == "SSL, system CAs"


@needs_openssl
def test_sasl_ssl_with_a_client_certificate(pki: dict[str, Path]):
    from faust.auth import SASLCredentials
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
    from faust.types.auth import AuthProtocol

    security = KafkaSecurity.from_env(
        {
            P + "SECURITY_PROTOCOL": "SASL_SSL",
            P + "SASL_MECHANISM": "SCRAM-SHA-512",
            P + "SASL_USERNAME": "monitor",
            P + "SASL_PASSWORD": "pw",
            P + "SSL_CAFILE": str(pki["ca"]),
            P + "SSL_CERTFILE": str(pki["client"]),
            P + "SSL_KEYFILE": str(pki["client_key"]),
        }
    )
    kwargs = security.aiokafka_kwargs()
    assert {k: v for k, v in kwargs.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "monitor",
        "sasl_plain_password": "pw",
    }
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    creds = security.faust_credentials()
    assert isinstance(creds, SASLCredentials) and creds.protocol is AuthProtocol.SASL_SSL
    faust_kwargs = credentials_to_aiokafka_auth(creds)
    assert faust_kwargs["security_protocol"] == "SASL_SSL" and faust_kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert isinstance(faust_kwargs["ssl_context"], ssl.SSLContext)


@needs_openssl
def test_certificate_and_key_in_one_file(pki: dict[str, Path]):
    security = KafkaSecurity.from_env({P + "SECURITY_PROTOCOL": "SSL", P + "SSL_CERTFILE": str(pki["combined"])})
    assert isinstance(security.ssl_context(), ssl.SSLContext)


# ---- one clear line for what cannot work ---------------------------------------------------


def test_unknown_protocol():
    message = _error({P + "SECURITY_PROTOCOL": "TLS"})
    assert message == f"{P}SECURITY_PROTOCOL must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, not 'TLS'"


def test_unknown_mechanism():
    message = _error(
        {
            P + "SECURITY_PROTOCOL": "SASL_SSL",
            P + "SASL_MECHANISM": "GSSAPI",
            P + "SASL_USERNAME": "u",
            P + "SASL_PASSWORD": "p",
        }
    )
    assert message == f"{P}SASL_MECHANISM must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, not 'GSSAPI'"


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_without_username(protocol: str):
    message = _error({P + "SECURITY_PROTOCOL": protocol, P + "SASL_PASSWORD": "p"})
    assert message == f"{P}SECURITY_PROTOCOL={protocol} needs {P}SASL_USERNAME"


def test_sasl_without_password():
    message = _error({P + "SECURITY_PROTOCOL": "SASL_SSL", P + "SASL_USERNAME": "u"})
    assert message == f"{P}SECURITY_PROTOCOL=SASL_SSL needs {P}SASL_PASSWORD"


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
def test_sasl_settings_without_sasl(protocol: str):
    message = _error({P + "SECURITY_PROTOCOL": protocol, P + "SASL_USERNAME": "u", P + "SASL_PASSWORD": "p"})
    assert message.startswith(f"{P}SASL_USERNAME, {P}SASL_PASSWORD set but {P}SECURITY_PROTOCOL={protocol}")
    assert "does not use SASL" in message


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_tls_files_without_tls(protocol: str, tmp_path: Path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = {P + "SECURITY_PROTOCOL": protocol, P + "SSL_CAFILE": str(ca)}
    if protocol.startswith("SASL"):
        env |= {P + "SASL_USERNAME": "u", P + "SASL_PASSWORD": "p"}
    message = _error(env)
    assert message == f"{P}SSL_CAFILE set but {P}SECURITY_PROTOCOL={protocol} does not use TLS (use SSL or SASL_SSL)"


def test_unreadable_ca_file(tmp_path: Path):
    missing = tmp_path / "nope" / "ca.pem"
    message = _error({P + "SECURITY_PROTOCOL": "SSL", P + "SSL_CAFILE": str(missing)})
    assert message == f"{P}SSL_CAFILE={missing} cannot be read: No such file or directory"


def test_ca_file_that_is_a_directory(tmp_path: Path):
    message = _error(
        {
            P + "SECURITY_PROTOCOL": "SASL_SSL",
            P + "SASL_USERNAME": "u",
            P + "SASL_PASSWORD": "p",
            P + "SSL_CAFILE": str(tmp_path),
        }
    )
    assert message == f"{P}SSL_CAFILE={tmp_path} is a directory, not a PEM file"


@needs_openssl
def test_ca_file_that_is_not_pem(pki: dict[str, Path]):
    message = _error({P + "SECURITY_PROTOCOL": "SSL", P + "SSL_CAFILE": str(pki["garbage"])})
    assert message.startswith(f"cannot build the Kafka TLS context from {P}SSL_CAFILE={pki['garbage']}: ")


@needs_openssl
def test_key_that_does_not_match_the_certificate(pki: dict[str, Path]):
    message = _error(
        {
            P + "SECURITY_PROTOCOL": "SSL",
            P + "SSL_CERTFILE": str(pki["client"]),
            P + "SSL_KEYFILE": str(pki["other_key"]),
        }
    )
    assert message.startswith(f"cannot build the Kafka TLS context from {P}SSL_CERTFILE={pki['client']}, ")


def test_key_without_certificate(tmp_path: Path):
    key = tmp_path / "client.key"
    key.write_text("x")
    message = _error({P + "SECURITY_PROTOCOL": "SSL", P + "SSL_KEYFILE": str(key)})
    assert message == f"{P}SSL_KEYFILE is set without {P}SSL_CERTFILE"


def test_direct_construction_is_checked_too():
    with pytest.raises(UserError, match="needs CROSSING_MONITOR_KAFKA_SASL_USERNAME"):
        KafkaSecurity(protocol="SASL_SSL", sasl_password="p")


def test_errors_end_the_command_with_one_line_and_exit_code_2(monkeypatch: pytest.MonkeyPatch, capsys):
    """A command that reads the settings stops the way every UserError does (cli.main)."""
    import argparse

    from crossing_monitor import cli

    def handler(args: argparse.Namespace) -> int:
        KafkaSecurity.from_env()
        return 0

    monkeypatch.setenv(P + "SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.delenv(P + "SASL_USERNAME", raising=False)
    monkeypatch.setattr(cli, "_handler", lambda spec: handler)
    assert cli.main(["record", "out.jsonl.gz"]) == 2
    err = capsys.readouterr().err
    assert err == f"crossing-monitor record: {P}SECURITY_PROTOCOL=SASL_SSL needs {P}SASL_USERNAME\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["worker", "--bootstrap", "127.0.0.1:1"],
        ["record", "out.jsonl", "--bootstrap", "127.0.0.1:1"],
        ["simulate", "--bootstrap", "127.0.0.1:1", "--days", "0.01", "--speed", "max", "--no-progress"],
        ["replay", "in.jsonl", "--bootstrap", "127.0.0.1:1"],
    ],
)
def test_every_kafka_command_reads_the_settings_before_it_connects(argv: list[str], tmp_path: Path):
    """The real commands, wired: a bad protocol stops each with one line, before any connection."""
    import os
    import sys

    (tmp_path / "in.jsonl").write_bytes(b'{"event_id": "x"}\n')
    env = dict(os.environ, **{P + "SECURITY_PROTOCOL": "BOGUS"})
    done = subprocess.run(
        [sys.executable, "-m", "crossing_monitor", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"crossing-monitor {argv[0]}: {P}SECURITY_PROTOCOL must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL,"
        " not 'BOGUS'"
    )
    assert "Traceback" not in done.stderr and "not answering" not in done.stderr

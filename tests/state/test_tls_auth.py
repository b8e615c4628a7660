"""Redis over TLS with a password: both connections of the shared state (the pipelined one for
admission scripts, redis-py for the rest) verify the server against the configured CA and
authenticate; a wrong password or an unknown CA is "unavailable", never a crash. And the
policy never holds the URL."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import subprocess
import time
from pathlib import Path

import pytest
from redis_server import REDIS_SERVER, free_port

from llmgw_kernel.decisions.limits import Budget, Limits, Subject
from llmgw_kernel.policy.load import PolicyError, load_policy
from llmgw_kernel.policy.model import BudgetLimit
from llmgw_kernel.state.admission import SharedLimits
from llmgw_kernel.state.client import StateClient, StateUnavailable
from llmgw_kernel.state.config import RedisSettings

PASSWORD = "s3cret-for-tests"


def _certificates(tmp: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
        b = x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        b = b.issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])).public_key(key.public_key())
        b = b.serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        b = b.not_valid_after(now + dt.timedelta(days=1))
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        if not ca:
            b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        return b.sign(issuer_key, hashes.SHA256())

    ca_key, srv_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("llmgw test CA", ca_key, "llmgw test CA", ca_key, True)
    srv = cert("127.0.0.1", srv_key, "llmgw test CA", ca_key, False)
    paths = tmp / "ca.crt", tmp / "srv.crt", tmp / "srv.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        srv_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
def tls_redis(tmp_path):
    ca, crt, key = _certificates(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--tls-cert-file", str(crt),
         "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
         "--requirepass", PASSWORD, "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    time.sleep(0.5)
    yield port, ca
    proc.kill()
    proc.wait()


async def _admit_once(url: str, ca_file: str | None) -> bool:
    client = StateClient(url, RedisSettings(ca_file=ca_file, command_timeout_ms=3000, connect_timeout_ms=3000))
    limits = SharedLimits(client, Limits(), "tls-test", Limits)
    budgets = [Budget(BudgetLimit(scope="key", name="k", usd=1.0), "k")]
    try:
        subject = Subject("k", None, None, "m")
        try:  # the pipelined connection first: TLS + AUTH of its own
            verdict = await limits._admit_shared("r1", time.time(), subject, budgets, [], 0.1, 10)
        finally:
            client.up = True  # whatever it found, ask redis-py too
        await client.run(client.redis.ping, "ping")  # redis-py: TLS + AUTH
        await limits.settle("r1", time.time(), 0.05, 10)
        spent, held = await limits.spend("key", "k", "month", time.time())
        assert (spent, held) == (0.05, 0.0)
        return verdict.allowed
    finally:
        await client.close()


def test_tls_with_a_password_and_a_ca_file(tls_redis):
    port, ca = tls_redis
    assert asyncio.run(_admit_once(f"rediss://:{PASSWORD}@127.0.0.1:{port}/0", str(ca)))


@pytest.mark.parametrize("problem", ["wrong password", "unknown CA"])
def test_a_refused_connection_is_unavailable_not_a_crash(tls_redis, problem):
    port, ca = tls_redis
    password, ca_file = ("wrong", str(ca)) if problem == "wrong password" else (PASSWORD, None)
    with pytest.raises(StateUnavailable):  # the pipelined connection refuses; redis-py the same
        asyncio.run(_admit_once(f"rediss://:{password}@127.0.0.1:{port}/0", ca_file))

    async def pinged() -> None:
        client = StateClient(f"rediss://:{password}@127.0.0.1:{port}/0", RedisSettings(ca_file=ca_file))
        try:
            await client.run(client.redis.ping, "ping")
        finally:
            await client.close()

    with pytest.raises(StateUnavailable):
        asyncio.run(pinged())


def test_the_policy_never_holds_the_url(tmp_path):
    path = tmp_path / "p.yaml"
    routes = "routes: {m: {targets: [{provider: d, model: demo-echo}]}}\nproviders: {d: {kind: demo}}\n"
    path.write_text(routes + "state: {redis: {url: 'redis://:pw@h:6379'}}\n")
    with pytest.raises(PolicyError, match="never goes in the policy"):
        load_policy(path)
    path.write_text(routes + "state: {redis: {url_env: 'redis://h'}}\n")  # a URL where a variable name goes
    with pytest.raises(PolicyError, match="url_env"):
        load_policy(path)
    path.write_text(routes + "state: {redis: {url_env: GATEWAY_REDIS, on_unavailable: fail_open}}\n")
    assert load_policy(path).state.redis.on_unavailable == "fail_open"

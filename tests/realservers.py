"""Real servers for the protocol-probe tests, started on unique 127.x addresses and stopped in finally blocks.

Each one is the Debian package's own daemon (`tests/run` installs them): OpenSSH sshd, OpenSSL's s_server,
MariaDB's mariadbd, dnsmasq, rpcbind. The tests that start one say so with the `programs` (and `root`) marks:
tests/conftest.py skips them, or under CI fails them, when this machine lacks what they need.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pathlib
import socket
import subprocess
import time

from tests.conftest import find_program

START_SECONDS = 30  # bound on waiting for a daemon to listen
PID = os.getpid()


def unique_address(n: int) -> str:
    """127.62.<pid>.<n>: parallel test runs never share an address."""
    return f"127.62.{PID % 250 + 1}.{n}"


def free_port(address: str, kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def program(name: str) -> str:
    """The path of a program a `programs` mark names (found as the mark's check finds it: PATH, then /usr/sbin)."""
    path = find_program(name)
    if path is None:  # the test lacks its programs(...) mark
        raise RuntimeError(f"{name} is not installed; mark the test @pytest.mark.programs({name!r})")
    return path


def _wait_tcp(address: str, port: int, process: subprocess.Popen, log: pathlib.Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((address, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{process.args[0]} did not listen on {address}:{port} within {START_SECONDS} s")


@contextlib.contextmanager
def daemon(argv: list[str], address: str, port: int, folder: pathlib.Path, wait_tcp: bool = True):
    """Run argv in the foreground; yield once address:port accepts; always stop it."""
    log = folder / f"{pathlib.Path(argv[0]).name}.log"
    with open(log, "w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        if wait_tcp:
            _wait_tcp(address, port, process, log)
        else:
            time.sleep(0.3)
            if process.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {process.returncode}: {log.read_text()[-2000:]}")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextlib.contextmanager
def sshd(folder: pathlib.Path):
    address = unique_address(22)
    port = free_port(address)
    key = folder / "host_ed25519"
    subprocess.run([program("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    config = folder / "sshd_config"
    config.write_text(f"ListenAddress {address}:{port}\nHostKey {key}\nPidFile none\nUsePAM no\n"
                      "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n"
                      "AuthorizedKeysFile none\n")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    with daemon([program("sshd"), "-D", "-e", "-f", str(config)], address, port, folder):
        yield address, port


@contextlib.contextmanager
def mariadb(folder: pathlib.Path):
    address = unique_address(33)
    port = free_port(address)
    data = folder / "data"
    subprocess.run([program("mariadb-install-db"), "--no-defaults", f"--datadir={data}", "--user=root", "--skip-test-db",
                    "--auth-root-authentication-method=normal"], check=True, timeout=120, capture_output=True)
    argv = [program("mariadbd"), "--no-defaults", f"--datadir={data}", "--user=root", f"--bind-address={address}",
            f"--port={port}", f"--socket={folder / 'mysqld.sock'}", f"--pid-file={folder / 'mysqld.pid'}",
            "--skip-log-bin", "--innodb-buffer-pool-size=16M", "--skip-name-resolve"]
    with daemon(argv, address, port, folder):
        yield address, port


@contextlib.contextmanager
def dnsmasq(folder: pathlib.Path, address: str | None = None, port: int | None = None):
    """A resolver with no upstream that answers for one local zone (csaudit.test)."""
    address = address or unique_address(53)
    port = port or free_port(address)
    argv = [program("dnsmasq"), "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            f"--listen-address={address}", "--bind-interfaces", f"--port={port}", f"--pid-file={folder / 'dnsmasq.pid'}",
            "--user=root", "--group=root", "--log-facility=-", "--local=/csaudit.test/"]
    with daemon(argv, address, port, folder):
        yield address, port


# ------------------------------------------------------------------ TLS: certificates made here, served by openssl s_server

def make_certificate(folder: pathlib.Path, name: str, not_before: datetime.datetime, not_after: datetime.datetime):
    """A CA-signed server certificate (the CA is made too, and trusted by nobody)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csaudit test CA"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "csaudit")])
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
                   .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@contextlib.contextmanager
def tls_server(folder: pathlib.Path, name: str, days_left: float, n: int):
    now = datetime.datetime.now(datetime.UTC)
    not_after = now + datetime.timedelta(days=days_left)
    cert, key = make_certificate(folder, name, min(now, not_after) - datetime.timedelta(days=365), not_after)
    address = unique_address(n)
    port = free_port(address)
    argv = [program("openssl"), "s_server", "-accept", f"{address}:{port}", "-cert", str(cert), "-key", str(key), "-quiet"]
    with daemon(argv, address, port, folder):
        yield address, port

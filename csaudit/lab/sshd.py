"""Real OpenSSH sshd processes for the lab: remote vantages that csaudit reaches for real.

Each sshd gets a private directory (config, host key, authorized keys, log) and listens only on
the addresses it is given (never 0.0.0.0: the lab's other listeners share this machine). Keys are
made with asyncssh, no ssh-keygen needed. Starting one needs root (privilege separation) and
/usr/sbin/sshd; `available()` says whether this machine can, and why not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import asyncssh

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = "/run/sshd"  # OpenSSH refuses to start without it; the Debian package makes it only at boot
START_WAIT = 5.0  # seconds an sshd may take to listen


def available() -> str | None:
    """None when this machine can run lab sshds; otherwise why not."""
    if not os.path.exists(SSHD):
        return f"{SSHD} is not installed (apt-get install openssh-server)"
    if os.geteuid() != 0:
        return "starting sshd needs root"
    return None


def make_key(path: str, comment: str = "csaudit-lab") -> str:
    """A new ed25519 key pair at path and path.pub (mode 0600); returns the public key line."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key.export_private_key())
    public = key.export_public_key().decode().strip()
    with open(f"{path}.pub", "w", encoding="ascii") as handle:
        handle.write(public + "\n")
    return public


class Sshd:
    """sshd -D on the given addresses, optionally inside a network namespace.

    `prefix` runs the daemon under another command, e.g. ["ip", "netns", "exec", NAME]; with
    `root_dir` the daemon sees that directory as /root (a bind mount in a private mount
    namespace), so a key at the real path /root/.ssh/id_rsa.cloud can live in a temp dir.
    """

    def __init__(self, workdir: str, listen: list[tuple[str, int]], authorized_keys: list[str],
                 prefix: list[str] | None = None, root_dir: str | None = None, extra_config: tuple[str, ...] = ()):
        self.workdir = workdir
        self.listen = listen
        self.authorized_keys = authorized_keys
        self.prefix = prefix or []
        self.root_dir = root_dir
        self.extra_config = extra_config  # more sshd_config lines, e.g. SetEnv PATH=... for a session without python3
        self.log = os.path.join(workdir, "sshd.log")
        self.host_public_key = ""
        self._process: subprocess.Popen | None = None

    def start(self) -> Sshd:
        problem = available()
        if problem:
            raise RuntimeError(problem)
        os.makedirs(self.workdir, exist_ok=True)
        os.makedirs(PRIVSEP_DIR, mode=0o755, exist_ok=True)
        host_key = os.path.join(self.workdir, "ssh_host_ed25519_key")
        self.host_public_key = make_key(host_key, "csaudit-lab-host")
        authorized = os.path.join(self.workdir, "authorized_keys")
        with open(authorized, "w", encoding="ascii") as handle:
            handle.write("".join(f"{line}\n" for line in self.authorized_keys))
        config = os.path.join(self.workdir, "sshd_config")
        with open(config, "w", encoding="ascii") as handle:
            handle.write("".join(f"ListenAddress {_hostport(a, p)}\n" for a, p in self.listen) + (
                f"HostKey {host_key}\nAuthorizedKeysFile {authorized}\nPidFile none\n"
                "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPrintMotd no\n"
                "AllowTcpForwarding yes\nMaxStartups 100\nLogLevel VERBOSE\n") + "".join(f"{line}\n" for line in self.extra_config))
        daemon = [SSHD, "-D", "-f", config, "-E", self.log]
        if self.root_dir:
            # Private mount namespace: the bind mount over /root never shows outside this sshd.
            daemon = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                      'mount --bind "$0" /root && exec "$@"', self.root_dir, *daemon]
        self._process = subprocess.Popen([*self.prefix, *daemon], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_listening()
        return self

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode(errors="replace").strip()
                raise RuntimeError(f"sshd exited at start: {error or self._log_text()[-500:]}")
            if self._log_text().count("Server listening on") >= len(self.listen):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sshd did not listen within {START_WAIT:g} s: {self._log_text()[-500:]}")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        self._process.stderr.close()
        self._process = None

    def __enter__(self) -> Sshd:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _log_text(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def logins(self) -> list[str]:
        """One line per accepted SSH login (the connection count the tests check)."""
        return [line for line in self._log_text().splitlines() if "Accepted publickey" in line]

    def known_hosts_lines(self) -> list[str]:
        return [f"{_known_host(a, p)} {self.host_public_key}" for a, p in self.listen]


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _known_host(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def remove_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)

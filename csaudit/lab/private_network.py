"""A private user and network namespace for the demo run by a normal user.

The embedded cloud listens on 127.x ports below 1024 (22, 80, 111, 123, 443). A normal user may not
bind those on the machine's loopback, but may own a user namespace in which it is root, with a network
namespace of its own: there those ports are free to bind, and nothing of the machine's network is seen
or touched. The namespace ends with the process.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
HOW_TO_RUN = "run `csaudit demo` as root (sudo), or allow unprivileged user namespaces (sysctl user.max_user_namespaces)"


def _unshare(flags: int) -> None:
    if hasattr(os, "unshare"):  # Python 3.12+
        os.unshare(flags)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)


def _bring_up_loopback() -> None:
    """`ip link set lo up`, as the ioctl it is: a new network namespace starts with lo down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def enter_private_network() -> str | None:
    """Make this process root of a new user namespace with its own network (lo up).

    Returns None on success, else one sentence on why not and how to run the demo instead.
    Must run before the process starts any thread: the kernel refuses a new user namespace to a
    multi-threaded process.
    """
    uid, gid = os.getuid(), os.getgid()
    try:
        _unshare(CLONE_NEWUSER | CLONE_NEWNET)
    except OSError as error:
        why = {errno.EPERM: "this system forbids unprivileged user namespaces",
               errno.ENOSPC: "this system allows no more user namespaces (user.max_user_namespaces)",
               errno.EUSERS: "this system allows no more user namespaces",
               errno.EINVAL: "a new user namespace needs a process that has started no thread yet"}.get(error.errno, "unshare() failed")
        return f"the demo binds ports below 1024, which needs root, and {why}: {HOW_TO_RUN}"
    try:
        _write("/proc/self/setgroups", "deny")  # required before an unprivileged gid_map
        _write("/proc/self/uid_map", f"0 {uid} 1")
        _write("/proc/self/gid_map", f"0 {gid} 1")
        _bring_up_loopback()
    except OSError as error:
        return f"the private network namespace could not be set up ({error.strerror}): {HOW_TO_RUN}"
    return None

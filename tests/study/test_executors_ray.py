"""The local Ray cluster wmprobe starts listens on the loopback interface only and is gone after shutdown.

Listening sockets are read from /proc/net/tcp and /proc/net/tcp6 (Linux), so the test needs no `ss`.
"""
from __future__ import annotations

import ipaddress
import os
import time

import pytest

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux /proc/net")


def _address(hex_ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """/proc/net/tcp{,6} hex address (host byte order per 32-bit word, little-endian here) -> IP address."""
    raw = bytes.fromhex(hex_ip)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(words)
    return ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip


def listening() -> set[tuple[str, int]]:
    """Every TCP socket in state LISTEN on this machine: ``{(ip, port)}``."""
    out = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(name):
            continue
        with open(name) as f:
            next(f)
            for line in f:
                local, state = line.split()[1], line.split()[3]
                if state == "0A":
                    ip, port = local.split(":")
                    out.add((str(_address(ip)), int(port, 16)))
    return out


def test_proc_net_parsing_reads_loopback():
    assert str(_address("0100007F")) == "127.0.0.1"
    assert str(_address("0000000000000000FFFF00000100007F")) == "127.0.0.1"
    assert str(_address("00000000000000000000000001000000")) == "::1"


@pytest.mark.slow
def test_local_ray_listens_on_loopback_only_and_stops():
    ray = pytest.importorskip("ray")
    from wmprobe.study.executors import start_local_ray, stop_local_ray
    assert not ray.is_initialized()
    before = listening()
    start_local_ray(num_cpus=1)
    try:
        assert ray.get(ray.remote(lambda: 41).remote()) + 1 == 42     # a worker process is up and answering
        opened = listening() - before
    finally:
        stop_local_ray()
    assert opened, "the Ray cluster opened no listening socket?"
    public = sorted((ip, port) for ip, port in opened if not ipaddress.ip_address(ip).is_loopback)
    assert not public, f"Ray listens beyond the loopback interface: {public}"
    deadline = time.monotonic() + 30
    while listening() & opened and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not listening() & opened, "Ray's servers still listen after ray.shutdown()"

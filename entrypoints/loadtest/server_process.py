"""A server process on this machine: find it by its listening port, sample its memory.

Linux only, from ``/proc`` (no psutil): ``/proc/net/tcp`` and ``/proc/net/tcp6`` give the
inode of the socket listening on a port, ``/proc/{pid}/fd`` tells which process holds it, and
``/proc/{pid}/status`` gives ``VmRSS``. Processes of other users are invisible without
privileges; then nothing is found and the report has no server figures.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Final

from entrypoints.loadtest.stats import ServerFigures

_TCP_LISTEN: Final = "0A"
_PROC: Final = Path("/proc")


def is_local_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (the only servers whose RSS we can read)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listening_socket_inodes(port: int, proc: Path = _PROC) -> set[str]:
    """Inodes of the TCP sockets (IPv4 and IPv6) listening on ``port``."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 10:
                continue
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _TCP_LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def pid_listening_on(port: int, proc: Path = _PROC) -> int | None:
    """The pid of the process listening on TCP ``port`` on this machine, or ``None``."""
    inodes = listening_socket_inodes(port, proc)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            descriptors = list((entry / "fd").iterdir())
        except OSError:
            continue  # gone, or not ours to read
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) in wanted:
                    return int(entry.name)
            except OSError:
                continue
    return None


def rss_bytes(pid: int, proc: Path = _PROC) -> int | None:
    """Resident set size of ``pid`` in bytes (``VmRSS``), or ``None`` when it cannot be read."""
    try:
        status = (proc / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024  # reported in kB
    return None


class RssSampler:
    """Keeps the RSS before the run and the peak seen by :meth:`sample` (call it every second)."""

    def __init__(self, pid: int, proc: Path = _PROC) -> None:
        self.pid = pid
        self._proc = proc
        self.before = rss_bytes(pid, proc) or 0
        self.peak = self.before

    def sample(self) -> int | None:
        """Read the RSS now (bytes) and keep the peak; ``None`` when the process is gone."""
        current = rss_bytes(self.pid, self._proc)
        if current is not None and current > self.peak:
            self.peak = current
        return current

    def figures(self, peak_open: int) -> ServerFigures:
        """The report's server figures, with the RSS growth shared over ``peak_open`` connections."""
        per_connection = None
        if peak_open > 0:
            per_connection = max(0, self.peak - self.before) // peak_open
        return ServerFigures(
            pid=self.pid,
            rss_before_bytes=self.before,
            peak_rss_bytes=self.peak,
            rss_per_connection_bytes=per_connection,
        )

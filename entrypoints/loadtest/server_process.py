"""A server process on this machine: find it by its listening port, sample its memory.

Linux only, from ``/proc`` (no psutil): ``/proc/net/tcp`` and ``/proc/net/tcp6`` give the
inode of the socket listening on a port, ``/proc/{pid}/fd`` tells which process holds it,
``/proc/{pid}/status`` gives ``VmRSS`` and ``/proc/{pid}/stat`` its CPU time (proc(5)).
Processes of other users are invisible without privileges; then nothing is found and the
report has no server figures.
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


def cpu_seconds(pid: int, proc: Path = _PROC) -> float | None:
    """User plus system CPU time ``pid`` has used so far, in seconds, or ``None`` when it
    cannot be read (``utime`` and ``stime``, fields 14 and 15 of ``/proc/{pid}/stat``, in
    clock ticks; proc(5))."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces and ')'
    try:
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError):
        return None


class ServerSampler:
    """A local server's memory and CPU over a load test.

    Keeps the RSS before the run and the peak seen by :meth:`sample` (call it every second),
    and the CPU time and pongs between :meth:`start_window` and :meth:`end_window` (the
    hold, once every handshake has settled), so CPU per pong leaves the handshakes out.
    """

    def __init__(self, pid: int, proc: Path = _PROC) -> None:
        self.pid = pid
        self._proc = proc
        self.before = rss_bytes(pid, proc) or 0
        self.peak = self.before
        self._window_start: tuple[float, int] | None = None
        self._window: tuple[float, int] | None = None

    def start_window(self, pongs: int) -> None:
        """Open the CPU window now, with ``pongs`` received so far (once; later calls do nothing)."""
        if self._window_start is None:
            cpu = cpu_seconds(self.pid, self._proc)
            if cpu is not None:
                self._window_start = (cpu, pongs)

    def end_window(self, pongs: int) -> None:
        """Close the CPU window now, with ``pongs`` received so far (nothing if never opened)."""
        if self._window_start is not None and self._window is None:
            cpu = cpu_seconds(self.pid, self._proc)
            if cpu is not None:
                start_cpu, start_pongs = self._window_start
                self._window = (max(0.0, cpu - start_cpu), pongs - start_pongs)

    def sample(self) -> int | None:
        """Read the RSS now (bytes) and keep the peak; ``None`` when the process is gone."""
        current = rss_bytes(self.pid, self._proc)
        if current is not None and current > self.peak:
            self.peak = current
        return current

    def figures(self, peak_open: int) -> ServerFigures:
        """The report's server figures: the RSS growth shared over ``peak_open`` connections,
        the CPU seconds and pongs of the window (``None`` when it was never closed)."""
        per_connection = None
        if peak_open > 0:
            per_connection = max(0, self.peak - self.before) // peak_open
        cpu, pongs = self._window if self._window is not None else (None, None)
        return ServerFigures(
            pid=self.pid,
            rss_before_bytes=self.before,
            peak_rss_bytes=self.peak,
            rss_per_connection_bytes=per_connection,
            hold_cpu_seconds=cpu,
            hold_pongs=pongs,
        )

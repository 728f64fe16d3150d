"""The soak's measure of CPU stolen by the hypervisor, from ``/proc/stat``-shaped files."""

from __future__ import annotations

from pathlib import Path

from tests.soak.machine import StealMeter, read_cpu_times


def write_stat(path: Path, user: int, idle: int, steal: int) -> None:
    #            user nice system idle iowait irq softirq steal guest guest_nice
    path.write_text(f"cpu  {user} 0 0 {idle} 0 0 0 {steal} 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")


def test_steal_and_total_are_read_from_the_first_line(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    write_stat(stat, user=600, idle=300, steal=100)

    assert read_cpu_times(stat) == (100, 1000)  # guest time is inside user: not added
    assert read_cpu_times(tmp_path / "missing") is None
    (tmp_path / "odd").write_text("intr 1 2 3\n")
    assert read_cpu_times(tmp_path / "odd") is None


def test_the_meter_gives_the_mean_share_and_the_worst_interval(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    meter = StealMeter(path=stat)
    assert meter.mean_percent is None

    write_stat(stat, user=0, idle=0, steal=0)
    meter.sample()
    write_stat(stat, user=90, idle=0, steal=10)  # 10 % stolen
    meter.sample()
    write_stat(stat, user=140, idle=10, steal=50)  # 40 of 100: 40 %
    meter.sample()
    write_stat(stat, user=280, idle=10, steal=50)  # none stolen
    meter.sample()

    assert meter.worst_percent == 40.0
    assert meter.mean_percent == round(100 * 50 / 340, 1)


def test_an_unreadable_stat_leaves_the_meter_empty(tmp_path: Path) -> None:
    meter = StealMeter(path=tmp_path / "missing")
    meter.sample()
    meter.sample()

    assert (meter.mean_percent, meter.worst_percent) == (None, None)

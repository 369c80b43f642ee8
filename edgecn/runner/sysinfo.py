"""The device and its state during a run: model, CPU, versions, peak RSS, CPU frequency and temperature.

Torch-free; everything degrades to "not available" where /proc or /sys lack the files.
"""

from __future__ import annotations

import glob
import os
import platform
import resource
import sys
import threading
import time
from pathlib import Path

NOT_AVAILABLE = "not available"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def device_model() -> str:
    """The board name from the device tree (Raspberry Pi, Jetson), else the DMI product name."""
    for p in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model", "/sys/class/dmi/id/product_name"):
        text = _read(p)
        if text:
            return text
    return NOT_AVAILABLE


def cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key:
                return line.split(":", 1)[1].strip()
    return platform.processor() or NOT_AVAILABLE


INT8_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
              "avx512_fp16", "amx_int8", "asimd", "asimddp", "i8mm", "sve", "sve2", "bf16")
"""CPU features that decide int8 and fp32 conv speed (x86 ``flags``, ARM ``Features``)."""


def isa_flags() -> list[str]:
    """The ``INT8_FLAGS`` this CPU has, from /proc/cpuinfo (empty where it cannot be read)."""
    text = _read("/proc/cpuinfo") or ""
    found: set[str] = set()
    for line in text.splitlines():
        if line.split(":")[0].strip() in ("flags", "Features"):
            found.update(line.split(":", 1)[1].split())
    return [f for f in INT8_FLAGS if f in found]


def environment() -> dict:
    """Where the numbers were taken."""
    return {"device": device_model(), "cpu": cpu_model(), "isa": isa_flags(), "cores": os.cpu_count(),
            "machine": platform.machine(),
            "os": platform.platform(), "python": sys.version.split()[0], "hostname": platform.node()}


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. under taskset or a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


CHILD_PEAKS_MB: list[float] = []
"""Peak RSS of runtime child processes (the native .pte runner), read from /proc before they exit."""


def process_peak_mb(pid: int | str = "self") -> float | None:
    """VmHWM of a process in MiB (Linux), or None where /proc does not say.

    Not ru_maxrss: Linux carries it across exec, so a runner started by a process that had torch
    loaded (``edgecn demo``, a build) would report its parent's peak.
    """
    text = _read(f"/proc/{pid}/status") or ""
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process plus its largest runtime child, MiB."""
    own = process_peak_mb()
    if own is None:  # no /proc (macOS): ru_maxrss, bytes there
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        own = rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
    return own + max(CHILD_PEAKS_MB, default=0.0)


class SensorSampler:
    """Samples CPU frequencies (MHz) and thermal zones (deg C) in a background thread.

    Args:
        interval: seconds between samples.
    """

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.freq_files = sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq"))
        self.temp_files = sorted(glob.glob("/sys/class/thermal/thermal_zone*/temp"))
        self.freq: list[float] = []
        self.temp: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edgecn-sensors", daemon=True)

    def __enter__(self) -> "SensorSampler":
        if self.freq_files or self.temp_files:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.freq += [v / 1000.0 for v in _numbers(self.freq_files)]
            self.temp += [v / 1000.0 for v in _numbers(self.temp_files)]
            self._stop.wait(self.interval)

    def summary(self) -> dict:
        return {"cpu_freq_mhz": _minmax(self.freq), "temperature_c": _minmax(self.temp)}


def _numbers(files: list[str]) -> list[float]:
    out = []
    for f in files:
        text = _read(f)
        if text and text.lstrip("-").isdigit():
            out.append(float(text))
    return out


def _minmax(values: list[float]) -> dict | str:
    if not values:
        return NOT_AVAILABLE
    return {"min": min(values), "mean": sum(values) / len(values), "max": max(values), "samples": len(values)}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")

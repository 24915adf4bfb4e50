"""GPU telemetry through NVML (nvidia-ml-py), sampled in the background while a run works.

On a machine without an NVIDIA driver (a laptop, CI, a CPU node) NVML cannot load; the run then records why and
carries on: telemetry never fails a broadcast.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any

import pynvml


@dataclass
class GpuSample:
    index: int
    name: str
    uuid: str
    memory_total_mib: int
    memory_used_peak_mib: int = 0
    utilization_peak_percent: int = 0
    utilization_mean_percent: float = 0.0
    power_peak_watts: float | None = None
    temperature_peak_c: int | None = None
    samples: int = 0
    _utilization_sum: int = field(default=0, repr=False)


@dataclass
class Telemetry:
    driver: str | None = None
    gpus: list[GpuSample] = field(default_factory=list)
    unavailable: str | None = None

    def summary(self) -> dict[str, Any]:
        if self.unavailable:
            return {"available": False, "reason": self.unavailable}
        gpus = [{k: v for k, v in asdict(g).items() if not k.startswith("_")} for g in self.gpus]
        return {"available": True, "driver": self.driver, "gpus": gpus}

    @property
    def gpu_name(self) -> str | None:
        return self.gpus[0].name if self.gpus else None


class GpuMonitor:
    """Context manager: samples every GPU NVML sees every `interval` seconds until closed."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.telemetry = Telemetry()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handles: list[Any] = []

    def __enter__(self) -> GpuMonitor:
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            self.telemetry.unavailable = f"NVML unavailable: {exc}"
            return self
        try:
            self.telemetry.driver = _text(pynvml.nvmlSystemGetDriverVersion())
            for index in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
                self._handles.append(handle)
                self.telemetry.gpus.append(
                    GpuSample(
                        index=index,
                        name=_text(pynvml.nvmlDeviceGetName(handle)),
                        uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                        memory_total_mib=int(memory.total) // 2**20,
                    )
                )
        except pynvml.NVMLError as exc:
            self.telemetry.unavailable = f"NVML error: {exc}"
            pynvml.nvmlShutdown()
            return self
        if not self._handles:
            self.telemetry.unavailable = "NVML found no GPU"
            pynvml.nvmlShutdown()
            return self
        self._sample()
        self._thread = threading.Thread(target=self._run, name="gpu-telemetry", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        for handle, gpu in zip(self._handles, self.telemetry.gpus, strict=True):
            try:
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
                rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
            except pynvml.NVMLError:
                continue
            gpu.samples += 1
            gpu.memory_used_peak_mib = max(gpu.memory_used_peak_mib, int(memory.used) // 2**20)
            gpu.utilization_peak_percent = max(gpu.utilization_peak_percent, int(rates.gpu))
            gpu._utilization_sum += int(rates.gpu)
            gpu.utilization_mean_percent = round(gpu._utilization_sum / gpu.samples, 1)
            try:
                watts = pynvml.nvmlDeviceGetPowerUsage(handle) / 1000
                gpu.power_peak_watts = max(gpu.power_peak_watts or 0.0, round(watts, 1))
                temp = int(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
                gpu.temperature_peak_c = max(gpu.temperature_peak_c or 0, temp)
            except pynvml.NVMLError:
                pass  # not every GPU (MIG slices, some vGPUs) reports power or temperature

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._sample()
            pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value

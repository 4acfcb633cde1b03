"""Unit tests for gpu_health with NVML stubbed: a fake ``pynvml`` module is injected in place of the real one.

The fake follows pynvml's interface (nvidia-ml-py 13): NVMLError subclasses carrying the NVML
return code in ``.value``, nvmlInit/nvmlShutdown, the device getters the module uses. One test
at the end uses the real pynvml: on a host without the NVIDIA driver it proves the "library not
found" message, on a GPU host it reads the real devices.
"""
import ctypes.util
import json
import os
import types
from collections import namedtuple

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.aistack.infra.plugins.module_utils import _nvml
from ansible_collections.aistack.infra.plugins.module_utils._nvml import GpuHealth, NvmlHealthError, cuda_version_text, run_health
from ansible_collections.aistack.infra.plugins.modules import gpu_health

MiB = 1024 * 1024
Memory = namedtuple("Memory", "total free used")
Util = namedtuple("Util", "gpu memory")
Pci = namedtuple("Pci", "busId")
Proc = namedtuple("Proc", "pid usedGpuMemory")

NOT_SUPPORTED = 3
NO_PERMISSION = 4
DRIVER_NOT_LOADED = 9
LIBRARY_NOT_FOUND = 12
GPU_IS_LOST = 15
MISMATCH = 18
_TEXT = {NOT_SUPPORTED: "Not Supported", NO_PERMISSION: "Insufficient Permissions",
         DRIVER_NOT_LOADED: "Driver Not Loaded", LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
         GPU_IS_LOST: "GPU is lost", MISMATCH: "RM has detected an NVML/RM version mismatch.", 999: "Unknown Error"}


def gpu(index=0, name="NVIDIA H100 80GB HBM3", total=81559, used=1024, temp=35, util=(3, 1), ecc=(1, 1),
        ecc_errors=(0, 0), power=69400, limit=700000, compute=(), graphics=(), fail=None):
    """One fake device. ``ecc`` None = not supported; ``fail`` maps a getter name to an NVML error code."""
    return dict(index=index, name=name, uuid="GPU-%08d-aaaa-bbbb-cccc-000000000000" % index,
                busId="00000000:%02X:00.0" % (0x18 + index), total=total, used=used, temp=temp, util=util, ecc=ecc,
                ecc_errors=ecc_errors, power=power, limit=limit, compute=list(compute), graphics=list(graphics),
                fail=dict(fail or {}))


def fake_nvml(gpus=(), init_error=None, driver="550.90.07", cuda=12040, names=None, bytes_strings=False):
    """A stand-in ``pynvml`` module; ``calls`` records what was called."""
    mod = types.ModuleType("pynvml")
    mod.calls = []

    class NVMLError(Exception):
        def __init__(self, value):
            super(NVMLError, self).__init__(value)
            self.value = value

        def __str__(self):
            return _TEXT.get(self.value, "NVML Error with code %d" % self.value)

    class NVMLError_NotSupported(NVMLError):
        pass

    def raise_code(code):
        raise (NVMLError_NotSupported if code == NOT_SUPPORTED else NVMLError)(code)

    mod.NVMLError = NVMLError
    mod.NVMLError_NotSupported = NVMLError_NotSupported
    mod.NVML_TEMPERATURE_GPU = 0
    mod.NVML_VOLATILE_ECC = 0
    mod.NVML_MEMORY_ERROR_TYPE_CORRECTED = 0
    mod.NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
    devs = list(gpus)
    names = names or {}

    def s(text):
        return text.encode() if bytes_strings else text

    def getter(key, produce):
        def fn(handle, *args):
            mod.calls.append(key)
            d = devs[handle]
            if key in d["fail"]:
                raise_code(d["fail"][key])
            return produce(d, *args)
        return fn

    def init():
        mod.calls.append("init")
        if init_error is not None:
            raise_code(init_error)

    def shutdown():
        mod.calls.append("shutdown")

    def handle(index):
        mod.calls.append("handle")
        if "handle" in devs[index]["fail"]:
            raise_code(devs[index]["fail"]["handle"])
        return index

    def ecc_mode(d):
        if d["ecc"] is None:
            raise_code(NOT_SUPPORTED)
        return list(d["ecc"])

    def ecc_errors(d, error_type, counter):
        assert counter == mod.NVML_VOLATILE_ECC
        return d["ecc_errors"][error_type]

    def process_name(pid):
        if pid not in names:
            raise_code(NO_PERMISSION)
        return s(names[pid])

    mod.nvmlInit = init
    mod.nvmlShutdown = shutdown
    mod.nvmlSystemGetDriverVersion = lambda: s(driver)
    mod.nvmlSystemGetCudaDriverVersion = lambda: cuda
    mod.nvmlDeviceGetCount = lambda: len(devs)
    mod.nvmlDeviceGetHandleByIndex = handle
    mod.nvmlDeviceGetName = getter("name", lambda d: s(d["name"]))
    mod.nvmlDeviceGetUUID = getter("uuid", lambda d: s(d["uuid"]))
    mod.nvmlDeviceGetPciInfo = getter("pci", lambda d: Pci(s(d["busId"])))
    mod.nvmlDeviceGetMemoryInfo = getter("memory", lambda d: Memory(d["total"] * MiB, (d["total"] - d["used"]) * MiB,
                                                                    d["used"] * MiB))
    mod.nvmlDeviceGetTemperature = getter("temperature", lambda d, sensor: d["temp"])
    mod.nvmlDeviceGetUtilizationRates = getter("utilization", lambda d: Util(*d["util"]))
    mod.nvmlDeviceGetEccMode = getter("ecc", ecc_mode)
    mod.nvmlDeviceGetTotalEccErrors = getter("ecc_errors", ecc_errors)
    mod.nvmlDeviceGetPowerUsage = getter("power", lambda d: d["power"])
    mod.nvmlDeviceGetEnforcedPowerLimit = getter("power_limit", lambda d: d["limit"])
    mod.nvmlDeviceGetComputeRunningProcesses = getter("compute", lambda d: [Proc(*p) for p in d["compute"]])
    mod.nvmlDeviceGetGraphicsRunningProcesses = getter("graphics", lambda d: [Proc(*p) for p in d["graphics"]])
    mod.nvmlSystemGetProcessName = process_name
    return mod


# ----------------------------------------------------------------------------- reading

def test_full_report_of_a_healthy_gpu():
    nv = fake_nvml([gpu(compute=[(4242, 2048 * MiB)])], names={4242: "python3"})
    report = run_health({}, nv)
    assert report["gpu_count"] == 1
    assert report["driver_version"] == "550.90.07" and report["cuda_driver_version"] == "12.4"
    assert report["gpus"] == [dict(
        index=0, name="NVIDIA H100 80GB HBM3", uuid="GPU-00000000-aaaa-bbbb-cccc-000000000000",
        pci_bus_id="00000000:18:00.0", memory_total_mb=81559, memory_used_mb=1024, memory_free_mb=80535,
        temperature_c=35, utilization_gpu_pct=3, utilization_memory_pct=1, ecc_mode="enabled",
        ecc_errors=dict(volatile_corrected=0, volatile_uncorrected=0), power_draw_w=69.4, power_limit_w=700.0,
        processes=[dict(pid=4242, name="python3", used_memory_mb=2048, type="compute")], not_supported=[], errors=[])]
    assert report["checks"] == [] and report["failed_checks"] == [] and report["changed"] is False
    assert "msg" not in report
    assert nv.calls[0] == "init" and nv.calls[-1] == "shutdown"


def test_bytes_from_older_pynvml_are_decoded():
    report = run_health({}, fake_nvml([gpu()], bytes_strings=True))
    assert report["driver_version"] == "550.90.07"
    assert report["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3" and report["gpus"][0]["pci_bus_id"] == "00000000:18:00.0"


@pytest.mark.parametrize("value,text", [(12040, "12.4"), (11080, "11.8"), (12000, "12.0"), (None, None)])
def test_cuda_version_text(value, text):
    assert cuda_version_text(value) == text


def test_processes_compute_and_graphics_are_merged():
    nv = fake_nvml([gpu(compute=[(10, 512 * MiB), (11, None)], graphics=[(10, 256 * MiB), (12, 64 * MiB)])],
                   names={10: "trainer", 12: "Xorg"})
    procs = run_health({}, nv)["gpus"][0]["processes"]
    assert procs == [dict(pid=10, name="trainer", used_memory_mb=512, type="compute+graphics"),
                     dict(pid=11, name=None, used_memory_mb=None, type="compute"),
                     dict(pid=12, name="Xorg", used_memory_mb=64, type="graphics")]


def test_ecc_not_supported_and_disabled():
    nv = fake_nvml([gpu(index=0, name="GeForce RTX 4090", ecc=None), gpu(index=1, ecc=(0, 0))])
    report = run_health({"max_ecc_uncorrected": 0}, nv)
    g0, g1 = report["gpus"]
    assert g0["ecc_mode"] == "not supported" and g0["ecc_errors"] is None and g0["not_supported"] == ["ecc"]
    assert g1["ecc_mode"] == "disabled" and g1["ecc_errors"] is None
    assert [c["detail"] for c in report["checks"]] == ["ECC not supported: check skipped", "ECC disabled: check skipped"]
    assert report["failed_checks"] == []
    assert "ecc_errors" not in nv.calls  # counters are not read when ECC is off


def test_readings_a_gpu_does_not_support_are_null():
    nv = fake_nvml([gpu(fail={"power": NOT_SUPPORTED, "utilization": NOT_SUPPORTED, "temperature": NOT_SUPPORTED})])
    g = run_health({}, nv)["gpus"][0]
    assert g["power_draw_w"] is None and g["utilization_gpu_pct"] is None and g["temperature_c"] is None
    assert g["not_supported"] == ["power", "temperature", "utilization"]
    assert g["errors"] == []


def test_devices_selects_and_validates():
    nv = fake_nvml([gpu(index=0), gpu(index=1), gpu(index=2)])
    report = run_health({"devices": [2, 0, 2]}, nv)
    assert report["gpu_count"] == 3 and [g["index"] for g in report["gpus"]] == [0, 2]
    with pytest.raises(NvmlHealthError) as err:
        run_health({"devices": [1, 3, 5]}, fake_nvml([gpu(index=0), gpu(index=1)]))
    assert err.value.msg == "devices: GPU index 3, 5 does not exist; this host has 2 GPUs (indexes 0-1)"
    with pytest.raises(NvmlHealthError, match="devices: GPU indexes are 0 or more"):
        run_health({"devices": [-1]}, nv)


def test_no_gpus():
    report = run_health({}, fake_nvml([]))
    assert report["gpu_count"] == 0 and report["gpus"] == [] and "msg" not in report
    report = run_health({"expect_count": 1, "min_free_memory_mb": 100}, fake_nvml([]))
    assert report["msg"] == "GPU health: 1 of 1 checks failed: host: 0 GPUs found, expect_count 1"
    with pytest.raises(NvmlHealthError, match="devices: GPU index 0 does not exist; this host has 0 GPUs$"):
        run_health({"devices": [0]}, fake_nvml([]))


# ----------------------------------------------------------------------------- thresholds

def test_every_failed_check_is_named():
    nv = fake_nvml([gpu(index=0, used=80000, temp=91, ecc_errors=(5, 2)), gpu(index=1, name="NVIDIA L4", total=23034)])
    report = run_health(dict(expect_count=4, min_free_memory_mb=2048, max_temperature_c=85, max_ecc_uncorrected=0), nv)
    assert [(c["check"], c["device"], c["ok"]) for c in report["checks"]] == [
        ("count", None, False),
        ("free_memory", 0, False), ("temperature", 0, False), ("ecc_uncorrected", 0, False),
        ("free_memory", 1, True), ("temperature", 1, True), ("ecc_uncorrected", 1, True)]
    assert report["msg"] == (
        "GPU health: 4 of 7 checks failed: host: 2 GPUs found, expect_count 4; "
        "GPU 0 (NVIDIA H100 80GB HBM3): free memory 1559 MB < min_free_memory_mb 2048; "
        "GPU 0 (NVIDIA H100 80GB HBM3): temperature 91 C > max_temperature_c 85; "
        "GPU 0 (NVIDIA H100 80GB HBM3): volatile uncorrected ECC errors 2 > max_ecc_uncorrected 0")
    assert len(report["failed_checks"]) == 4


def test_thresholds_at_the_limit_pass():
    nv = fake_nvml([gpu(used=81559 - 2048, temp=85, ecc_errors=(0, 1))])
    report = run_health(dict(expect_count=1, min_free_memory_mb=2048, max_temperature_c=85, max_ecc_uncorrected=1), nv)
    assert report["failed_checks"] == [] and all(c["ok"] for c in report["checks"])


def test_unreadable_values_fail_their_check():
    nv = fake_nvml([gpu(fail={"temperature": NOT_SUPPORTED, "memory": NO_PERMISSION})])
    report = run_health(dict(min_free_memory_mb=1, max_temperature_c=80), nv)
    details = [c["detail"] for c in report["failed_checks"]]
    assert details == ["memory: no permission", "free memory could not be read", "temperature could not be read"]


def test_lost_gpu_is_a_failed_device_check():
    nv = fake_nvml([gpu(index=0), gpu(index=1, fail={"handle": GPU_IS_LOST})])
    report = run_health({}, nv)
    assert report["msg"] == "GPU health: 1 of 1 checks failed: GPU 1: cannot open the device: GPU is lost"


def test_negative_thresholds_are_refused():
    with pytest.raises(NvmlHealthError, match="max_temperature_c must be 0 or more, got -1"):
        run_health({"max_temperature_c": -1}, fake_nvml([gpu()]))


# ----------------------------------------------------------------------------- NVML missing / broken

@pytest.mark.parametrize("code,message", [
    (LIBRARY_NOT_FOUND, "NVML library not found: install the NVIDIA driver (libnvidia-ml.so.1) on this host"),
    (DRIVER_NOT_LOADED, "NVIDIA driver not loaded (NVML: Driver Not Loaded): load the kernel module (modprobe nvidia)"),
    (NO_PERMISSION, "no permission to use NVML (NVML: Insufficient Permissions): run the task as root"),
    (MISMATCH, "NVML and the loaded NVIDIA kernel module have different versions"),
    (999, "NVML initialisation failed: Unknown Error (code 999)"),
])
def test_init_errors_say_what_to_do(code, message):
    nv = fake_nvml([gpu()], init_error=code)
    with pytest.raises(NvmlHealthError) as err:
        GpuHealth(nv).collect()
    assert err.value.msg.startswith(message)
    assert "shutdown" not in nv.calls


def test_shutdown_even_when_reading_fails():
    nv = fake_nvml([gpu()])
    nv.nvmlDeviceGetCount = lambda: (_ for _ in ()).throw(nv.NVMLError(GPU_IS_LOST))
    with pytest.raises(NvmlHealthError, match="NVML could not count the GPUs: GPU is lost"):
        GpuHealth(nv).collect()
    assert nv.calls[-1] == "shutdown"


# ----------------------------------------------------------------------------- the module

def run_module_main(args, monkeypatch, capsys, nvml=None, check_mode=False):
    if nvml is not None:
        monkeypatch.setattr(_nvml, "pynvml", nvml)
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            gpu_health.main()
    return exc.value.code != 0, json.loads(capsys.readouterr().out)


def test_module_reports_and_never_changes(monkeypatch, capsys):
    failed, out = run_module_main({"expect_count": 1}, monkeypatch, capsys, fake_nvml([gpu()]), check_mode=True)
    assert not failed and out["changed"] is False and out["gpu_count"] == 1
    assert out["checks"][0]["ok"] is True


def test_module_fails_with_summary_and_data(monkeypatch, capsys):
    failed, out = run_module_main({"max_temperature_c": 30}, monkeypatch, capsys, fake_nvml([gpu(temp=44)]))
    assert failed and out["changed"] is False
    assert out["msg"] == ("GPU health: 1 of 1 checks failed: GPU 0 (NVIDIA H100 80GB HBM3): "
                          "temperature 44 C > max_temperature_c 30")
    assert out["gpus"][0]["temperature_c"] == 44


def test_module_missing_library_message(monkeypatch, capsys):
    failed, out = run_module_main({}, monkeypatch, capsys, fake_nvml([], init_error=LIBRARY_NOT_FOUND))
    assert failed and out["msg"].startswith("NVML library not found: install the NVIDIA driver (libnvidia-ml.so.1)")


def test_module_without_pynvml(monkeypatch, capsys):
    monkeypatch.setattr(gpu_health, "HAS_PYNVML", False)
    failed, out = run_module_main({}, monkeypatch, capsys)
    assert failed and "Failed to import the required Python library (nvidia-ml-py (pynvml))" in out["msg"]


def test_module_argument_types(monkeypatch, capsys):
    failed, out = run_module_main({"devices": ["zero"]}, monkeypatch, capsys, fake_nvml([gpu()]))
    assert failed and "devices" in out["msg"]


def _has_nvml_library():
    return bool(ctypes.util.find_library("nvidia-ml")) or os.path.exists("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1")


def test_real_pynvml_on_this_host(monkeypatch, capsys):
    """No stub: the real pynvml against whatever this host has."""
    pytest.importorskip("pynvml")
    failed, out = run_module_main({}, monkeypatch, capsys)
    if _has_nvml_library():
        assert not failed, out.get("msg")
        assert out["gpu_count"] == len(out["gpus"]) and out["driver_version"]
    else:
        assert failed
        assert out["msg"].startswith("NVML library not found: install the NVIDIA driver (libnvidia-ml.so.1)")

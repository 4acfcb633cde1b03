# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""GPU health through NVML for aistack.infra (private: not a public API).

``GpuHealth`` reads every device through pynvml (the ``nvidia-ml-py`` package), turns the
readings into plain numbers (MB, degrees C, %, W) and evaluates the thresholds of ``gpu_health``.
It only reads; NVML errors become ``NvmlHealthError`` with a message that says what to do.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import traceback

try:
    import pynvml
    HAS_PYNVML = True
    PYNVML_IMPORT_ERROR = None
except ImportError:
    pynvml = None
    HAS_PYNVML = False
    PYNVML_IMPORT_ERROR = traceback.format_exc()

MB = 1024 * 1024

# NVML return codes (nvml.h); pynvml exposes the same values as NVML_ERROR_*.
_NOT_SUPPORTED = 3
_NO_PERMISSION = 4
_DRIVER_NOT_LOADED = 9
_LIBRARY_NOT_FOUND = 12
_FUNCTION_NOT_FOUND = 13
_GPU_IS_LOST = 15
_LIB_RM_VERSION_MISMATCH = 18

_INIT_ADVICE = {
    _LIBRARY_NOT_FOUND: ("NVML library not found: install the NVIDIA driver (libnvidia-ml.so.1) on this host, "
                         "or run the task on a GPU host"),
    _DRIVER_NOT_LOADED: ("NVIDIA driver not loaded (NVML: Driver Not Loaded): load the kernel module "
                         "(modprobe nvidia) or reboot after installing the driver"),
    _NO_PERMISSION: ("no permission to use NVML (NVML: Insufficient Permissions): run the task as root "
                     "(become: true) or give the user access to /dev/nvidia*"),
    _LIB_RM_VERSION_MISMATCH: ("NVML and the loaded NVIDIA kernel module have different versions (driver upgraded "
                               "without a reboot): reboot the host or reload the nvidia modules"),
}


class NvmlHealthError(Exception):
    """A problem the user can act on; main() turns it into fail_json(msg=...)."""

    def __init__(self, msg, **details):
        super(NvmlHealthError, self).__init__(msg)
        self.msg = msg
        self.details = details


def _code(exc):
    return getattr(exc, 'value', None)


def _text(value):
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return value


def cuda_version_text(value):
    """NVML's CUDA driver version integer (12040) as text ("12.4")."""
    if value is None:
        return None
    return '%d.%d' % (value // 1000, (value % 1000) // 10)


class GpuHealth(object):
    """Read the GPUs once and evaluate thresholds."""

    def __init__(self, nvml=None):
        self.nvml = nvml if nvml is not None else pynvml

    # ---- reading
    def _optional(self, func, *args):
        """Call an NVML getter; (value, None) or (None, 'not supported' / error text) when it cannot answer."""
        try:
            return func(*args), None
        except self.nvml.NVMLError as exc:
            if _code(exc) in (_NOT_SUPPORTED, _FUNCTION_NOT_FOUND):
                return None, 'not supported'
            if _code(exc) == _NO_PERMISSION:
                return None, 'no permission'
            return None, str(exc)

    def collect(self, devices=None):
        nv = self.nvml
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            advice = _INIT_ADVICE.get(_code(exc))
            raise NvmlHealthError(advice or "NVML initialisation failed: %s (code %s)" % (exc, _code(exc)),
                                  nvml_error=str(exc))
        try:
            return self._collect(devices)
        finally:
            try:
                nv.nvmlShutdown()
            except nv.NVMLError:
                pass

    def _collect(self, devices):
        nv = self.nvml
        driver, _err = self._optional(nv.nvmlSystemGetDriverVersion)
        cuda, _err = self._optional(nv.nvmlSystemGetCudaDriverVersion)
        try:
            count = int(nv.nvmlDeviceGetCount())
        except nv.NVMLError as exc:
            raise NvmlHealthError("NVML could not count the GPUs: %s (code %s)" % (exc, _code(exc)))
        indexes = list(range(count)) if devices is None else list(devices)
        missing = [i for i in indexes if not 0 <= i < count]
        if missing:
            raise NvmlHealthError("devices: GPU index %s does not exist; this host has %d GPU%s%s"
                                  % (', '.join(str(i) for i in missing), count, '' if count == 1 else 's',
                                     ' (indexes 0-%d)' % (count - 1) if count else ''),
                                  gpu_count=count, driver_version=_text(driver), cuda_driver_version=cuda_version_text(cuda))
        return dict(gpu_count=count, driver_version=_text(driver), cuda_driver_version=cuda_version_text(cuda),
                    gpus=[self._device(i) for i in indexes])

    def _device(self, index):
        nv = self.nvml
        gpu = dict(index=index, name=None, uuid=None, pci_bus_id=None, memory_total_mb=None, memory_used_mb=None,
                   memory_free_mb=None, temperature_c=None, utilization_gpu_pct=None, utilization_memory_pct=None,
                   ecc_mode=None, ecc_errors=None, power_draw_w=None, power_limit_w=None, processes=[], errors=[])
        try:
            handle = nv.nvmlDeviceGetHandleByIndex(index)
        except nv.NVMLError as exc:
            gpu['errors'].append('cannot open the device: %s' % exc)
            return gpu
        unsupported = []

        def read(key, func, *args):
            value, err = self._optional(func, handle, *args)
            if err == 'not supported':
                unsupported.append(key)
            elif err:
                gpu['errors'].append('%s: %s' % (key, err))
            return value

        gpu['name'] = _text(read('name', nv.nvmlDeviceGetName))
        gpu['uuid'] = _text(read('uuid', nv.nvmlDeviceGetUUID))
        pci = read('pci_bus_id', nv.nvmlDeviceGetPciInfo)
        if pci is not None:
            gpu['pci_bus_id'] = _text(getattr(pci, 'busId', None))
        mem = read('memory', nv.nvmlDeviceGetMemoryInfo)
        if mem is not None:
            gpu['memory_total_mb'] = int(mem.total // MB)
            gpu['memory_used_mb'] = int(mem.used // MB)
            gpu['memory_free_mb'] = int(mem.free // MB)
        gpu['temperature_c'] = read('temperature', nv.nvmlDeviceGetTemperature, nv.NVML_TEMPERATURE_GPU)
        util = read('utilization', nv.nvmlDeviceGetUtilizationRates)
        if util is not None:
            gpu['utilization_gpu_pct'] = int(util.gpu)
            gpu['utilization_memory_pct'] = int(util.memory)
        mode = read('ecc', nv.nvmlDeviceGetEccMode)
        if mode is None:
            gpu['ecc_mode'] = 'not supported' if 'ecc' in unsupported else None
        else:
            current = mode[0] if isinstance(mode, (list, tuple)) else mode
            gpu['ecc_mode'] = 'enabled' if current else 'disabled'
            if current:
                corrected = read('ecc_errors', nv.nvmlDeviceGetTotalEccErrors,
                                 nv.NVML_MEMORY_ERROR_TYPE_CORRECTED, nv.NVML_VOLATILE_ECC)
                uncorrected = read('ecc_errors', nv.nvmlDeviceGetTotalEccErrors,
                                   nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_VOLATILE_ECC)
                gpu['ecc_errors'] = dict(volatile_corrected=corrected, volatile_uncorrected=uncorrected)
        power = read('power', nv.nvmlDeviceGetPowerUsage)
        if power is not None:
            gpu['power_draw_w'] = round(power / 1000.0, 1)
        limit = read('power_limit', nv.nvmlDeviceGetEnforcedPowerLimit)
        if limit is not None:
            gpu['power_limit_w'] = round(limit / 1000.0, 1)
        gpu['processes'] = self._processes(handle, read)
        gpu['not_supported'] = sorted(set(unsupported))
        return gpu

    def _processes(self, handle, read):
        nv = self.nvml
        found = {}
        for kind, func in (('compute', nv.nvmlDeviceGetComputeRunningProcesses),
                           ('graphics', nv.nvmlDeviceGetGraphicsRunningProcesses)):
            for proc in read('processes', func) or []:
                pid = int(proc.pid)
                used = getattr(proc, 'usedGpuMemory', None)
                entry = found.setdefault(pid, dict(pid=pid, name=None, used_memory_mb=None, type=[]))
                entry['type'].append(kind)
                if used is not None:
                    entry['used_memory_mb'] = max(entry['used_memory_mb'] or 0, int(used // MB))
        for entry in found.values():
            name, _err = self._optional(nv.nvmlSystemGetProcessName, entry['pid'])
            entry['name'] = _text(name)
            entry['type'] = '+'.join(entry['type'])
        return [found[pid] for pid in sorted(found)]

    # ---- thresholds
    @staticmethod
    def evaluate(report, expect_count=None, min_free_memory_mb=None, max_temperature_c=None, max_ecc_uncorrected=None):
        """Every check as {check, device, ok, detail}."""
        checks = []

        def add(check, device, ok, detail):
            checks.append(dict(check=check, device=device, ok=bool(ok), detail=detail))

        if expect_count is not None:
            count = report['gpu_count']
            add('count', None, count == expect_count,
                '%d GPU%s found, expect_count %d' % (count, '' if count == 1 else 's', expect_count))
        for gpu in report['gpus']:
            idx = gpu['index']
            if gpu['errors']:
                add('device', idx, False, '; '.join(gpu['errors']))
            if min_free_memory_mb is not None:
                free = gpu['memory_free_mb']
                if free is None:
                    add('free_memory', idx, False, 'free memory could not be read')
                else:
                    add('free_memory', idx, free >= min_free_memory_mb, 'free memory %d MB %s min_free_memory_mb %d'
                        % (free, '>=' if free >= min_free_memory_mb else '<', min_free_memory_mb))
            if max_temperature_c is not None:
                temp = gpu['temperature_c']
                if temp is None:
                    add('temperature', idx, False, 'temperature could not be read')
                else:
                    add('temperature', idx, temp <= max_temperature_c, 'temperature %d C %s max_temperature_c %d'
                        % (temp, '<=' if temp <= max_temperature_c else '>', max_temperature_c))
            if max_ecc_uncorrected is not None:
                errors = (gpu['ecc_errors'] or {}).get('volatile_uncorrected')
                if gpu['ecc_mode'] != 'enabled' or errors is None:
                    add('ecc_uncorrected', idx, True, 'ECC %s: check skipped' % (gpu['ecc_mode'] or 'unreadable'))
                else:
                    add('ecc_uncorrected', idx, errors <= max_ecc_uncorrected,
                        'volatile uncorrected ECC errors %d %s max_ecc_uncorrected %d'
                        % (errors, '<=' if errors <= max_ecc_uncorrected else '>', max_ecc_uncorrected))
        return checks


def summarize(report, checks):
    """One line naming every failed check, or None when all passed."""
    names = dict((g['index'], g.get('name')) for g in report.get('gpus', []))
    failed = [c for c in checks if not c['ok']]
    if not failed:
        return None
    parts = []
    for c in failed:
        where = 'host' if c['device'] is None else 'GPU %d%s' % (c['device'], ' (%s)' % names[c['device']]
                                                                 if names.get(c['device']) else '')
        parts.append('%s: %s' % (where, c['detail']))
    return 'GPU health: %d of %d checks failed: %s' % (len(failed), len(checks), '; '.join(parts))


def run_health(params, nvml=None):
    """What gpu_health does: validate, read, evaluate. Returns the result dict (failed checks in 'msg')."""
    for key in ('expect_count', 'min_free_memory_mb', 'max_temperature_c', 'max_ecc_uncorrected'):
        if params.get(key) is not None and params[key] < 0:
            raise NvmlHealthError('%s must be 0 or more, got %d' % (key, params[key]))
    devices = params.get('devices')
    if devices is not None:
        if any(i < 0 for i in devices):
            raise NvmlHealthError('devices: GPU indexes are 0 or more, got %s' % ', '.join(str(i) for i in devices))
        devices = sorted(set(devices))
    health = GpuHealth(nvml)
    report = health.collect(devices)
    checks = health.evaluate(report, params.get('expect_count'), params.get('min_free_memory_mb'),
                             params.get('max_temperature_c'), params.get('max_ecc_uncorrected'))
    report['checks'] = checks
    report['failed_checks'] = [c for c in checks if not c['ok']]
    report['changed'] = False
    message = summarize(report, checks)
    if message:
        report['msg'] = message
    return report

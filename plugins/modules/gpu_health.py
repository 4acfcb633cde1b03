#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: gpu_health
short_description: Report NVIDIA GPU health through NVML and check thresholds
version_added: 0.1.0
description:
  - Reads every NVIDIA GPU of the target host through NVML (the library of the NVIDIA driver,
    used through the C(pynvml) module of the C(nvidia-ml-py) package) - name, UUID, memory,
    temperature, utilisation, ECC mode and volatile ECC error counts, power, running processes -
    and the driver and CUDA driver versions.
  - Checks the thresholds given (O(expect_count), O(min_free_memory_mb), O(max_temperature_c),
    O(max_ecc_uncorrected)) and fails with one message naming every failed check.
  - Never changes anything.
author:
  - aistack.infra maintainers (@aistack)
requirements:
  - nvidia-ml-py (provides the C(pynvml) module) on the target host
  - the NVIDIA driver (C(libnvidia-ml.so.1)) on the target host
extends_documentation_fragment:
  - aistack.infra.attributes.info_module
options:
  expect_count:
    description: Number of GPUs NVML must see on the host.
    type: int
  min_free_memory_mb:
    description: Each checked GPU must have at least this much free memory (MiB).
    type: int
  max_temperature_c:
    description: Each checked GPU must be at or below this temperature (degrees Celsius).
    type: int
  max_ecc_uncorrected:
    description:
      - Each checked GPU may have at most this many volatile (since the last driver load) uncorrected ECC errors.
      - GPUs without ECC, or with ECC disabled, pass this check; the check says it was skipped.
    type: int
  devices:
    description:
      - Indexes (as NVML numbers them, like C(nvidia-smi)) of the GPUs to report and check. Default is every GPU.
      - An index the host does not have is an error.
    type: list
    elements: int
notes:
  - With no thresholds, the module only reports; a host without GPUs then succeeds with RV(gpu_count=0).
    Set O(expect_count) to require GPUs.
  - A missing driver or NVML library fails with a message saying what to install.
"""

EXAMPLES = r"""
- name: Every GPU present, cool and with room for the model
  aistack.infra.gpu_health:
    expect_count: 2
    min_free_memory_mb: 20000
    max_temperature_c: 85
    max_ecc_uncorrected: 0

- name: Report GPU 0 only
  aistack.infra.gpu_health:
    devices: [0]
  register: gpu

- name: Show what runs on it
  ansible.builtin.debug:
    msg: "{{ gpu.gpus[0].processes | map(attribute='name') | list }}"
"""

RETURN = r"""
gpu_count:
  description: Number of GPUs NVML sees (all of them, whatever O(devices) says).
  returned: when NVML could be used
  type: int
  sample: 1
driver_version:
  description: NVIDIA driver version.
  returned: when NVML could be used
  type: str
  sample: "550.90.07"
cuda_driver_version:
  description: Highest CUDA version the driver supports.
  returned: when NVML could be used
  type: str
  sample: "12.4"
gpus:
  description:
    - One entry per reported GPU. A reading the GPU does not support is null and named in C(not_supported).
  returned: when NVML could be used
  type: list
  elements: dict
  contains:
    index: {description: NVML index., type: int}
    name: {description: Product name., type: str}
    uuid: {description: GPU UUID., type: str}
    pci_bus_id: {description: PCI bus id., type: str}
    memory_total_mb: {description: Total memory (MiB)., type: int}
    memory_used_mb: {description: Used memory (MiB)., type: int}
    memory_free_mb: {description: Free memory (MiB)., type: int}
    temperature_c: {description: GPU core temperature (degrees C)., type: int}
    utilization_gpu_pct: {description: GPU utilisation over the last sample period (%)., type: int}
    utilization_memory_pct: {description: Memory controller utilisation (%)., type: int}
    ecc_mode: {description: "C(enabled), C(disabled) or C(not supported).", type: str}
    ecc_errors:
      description: Volatile ECC error counts (C(volatile_corrected), C(volatile_uncorrected)); null unless ECC is enabled.
      type: dict
    power_draw_w: {description: Power draw (W)., type: float}
    power_limit_w: {description: Enforced power limit (W)., type: float}
    processes:
      description: Processes using the GPU - C(pid), C(name), C(used_memory_mb), C(type) (C(compute), C(graphics) or both).
      type: list
      elements: dict
    not_supported: {description: Readings this GPU does not support., type: list, elements: str}
    errors: {description: Readings that failed for another reason (a failed C(device) check)., type: list, elements: str}
  sample:
    - index: 0
      name: NVIDIA H100 80GB HBM3
      uuid: GPU-6c1f0d4e-0000-0000-0000-000000000000
      pci_bus_id: "00000000:18:00.0"
      memory_total_mb: 81559
      memory_used_mb: 1
      memory_free_mb: 81080
      temperature_c: 31
      utilization_gpu_pct: 0
      utilization_memory_pct: 0
      ecc_mode: enabled
      ecc_errors: {volatile_corrected: 0, volatile_uncorrected: 0}
      power_draw_w: 69.4
      power_limit_w: 700.0
      processes: []
      not_supported: []
      errors: []
checks:
  description: Every threshold check made - C(check), C(device) (null for host-wide checks), C(ok), C(detail).
  returned: when NVML could be used
  type: list
  elements: dict
  sample:
    - {check: temperature, device: 0, ok: true, detail: "temperature 31 C <= max_temperature_c 85"}
failed_checks:
  description: The checks that failed (same shape as RV(checks)).
  returned: when NVML could be used
  type: list
  elements: dict
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.aistack.infra.plugins.module_utils._nvml import (
    HAS_PYNVML,
    PYNVML_IMPORT_ERROR,
    NvmlHealthError,
    run_health,
)


def argument_spec():
    return dict(
        expect_count=dict(type='int'),
        min_free_memory_mb=dict(type='int'),
        max_temperature_c=dict(type='int'),
        max_ecc_uncorrected=dict(type='int'),
        devices=dict(type='list', elements='int'),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_PYNVML:
        module.fail_json(msg=missing_required_lib('nvidia-ml-py (pynvml)'), exception=PYNVML_IMPORT_ERROR)
    try:
        result = run_health(module.params)
    except NvmlHealthError as exc:
        module.fail_json(msg=exc.msg, changed=False, **exc.details)
    if result.get('failed_checks'):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

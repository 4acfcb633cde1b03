#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: gpu_pci_info
short_description: Find NVIDIA GPUs on the PCI bus and say whether the driver needs a reboot
version_added: 0.1.0
description:
  - Lists the NVIDIA display controllers (PCI vendor C(0x10de), class C(0x03xxxx)) from sysfs,
    which works before any NVIDIA software is installed, with the kernel driver bound to each.
  - Compares the version of the C(nvidia) kernel module installed on disk (C(modinfo)) with the
    loaded one (C(/sys/module/nvidia/version)) and sets RV(reboot_required) when they differ or
    when a GPU is present, the module is installed and it is not loaded.
  - Never changes anything; the M(aistack.infra.gpu_health) module reads the GPUs themselves through NVML
    once the driver runs.
author:
  - aistack.infra maintainers (@aistack)
extends_documentation_fragment:
  - aistack.infra.attributes.info_module
options:
  sysfs_root:
    description: Where sysfs is mounted.
    type: path
    default: /sys
  modinfo:
    description:
      - Read the installed module version with C(modinfo -F version) (names C(nvidia), then Debian's
        C(nvidia-current)). Without it RV(driver.installed_version) is null and no reboot is ever reported.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Find the GPUs
  aistack.infra.gpu_pci_info:
  register: gpu_pci

- name: Say so when a reboot is needed
  ansible.builtin.debug:
    msg: "{{ gpu_pci.reboot_reason }}"
  when: gpu_pci.reboot_required
"""

RETURN = r"""
gpu_count:
  description: Number of NVIDIA GPUs on the PCI bus.
  returned: always
  type: int
  sample: 4
devices:
  description: The GPUs, sorted by PCI address (the order C(nvidia-smi) numbers them by default).
  returned: always
  type: list
  elements: dict
  sample:
    - {pci_address: "0000:01:00.0", vendor_id: "0x10de", device_id: "0x27b0", class: "0x030000", driver: nvidia}
driver:
  description: C(installed_version) (from C(modinfo), null when not installed) and C(loaded_version)
    (null when the module is not loaded) of the nvidia kernel module.
  returned: always
  type: dict
  sample: {installed_version: "550.163.01", loaded_version: "550.144.03"}
  contains:
    installed_version:
      description: Version of the nvidia kernel module on disk for the running kernel; null when not installed.
      type: str
      returned: always
    loaded_version:
      description: Version of the loaded nvidia kernel module; null when it is not loaded.
      type: str
      returned: always
reboot_required:
  description: True when the installed driver module is not the one running while a GPU is present.
  returned: always
  type: bool
reboot_reason:
  description: Why a reboot is needed; null when it is not.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aistack.infra.plugins.module_utils._gpu_pci import (
    loaded_module_version,
    nvidia_pci_devices,
    reboot_state,
)


def installed_module_version(module):
    modinfo = module.get_bin_path('modinfo', opt_dirs=['/usr/sbin', '/sbin'])
    if not modinfo:
        return None
    for name in ('nvidia', 'nvidia-current'):
        rc, out, _err = module.run_command([modinfo, '-F', 'version', name])
        if rc == 0 and out.strip():
            return out.strip().splitlines()[0]
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sysfs_root=dict(type='path', default='/sys'),
            modinfo=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    root = module.params['sysfs_root']
    devices = nvidia_pci_devices(root)
    installed = installed_module_version(module) if module.params['modinfo'] else None
    loaded = loaded_module_version(root)
    reboot, reason = reboot_state(devices, installed, loaded)
    module.exit_json(
        changed=False,
        gpu_count=len(devices),
        devices=devices,
        driver=dict(installed_version=installed, loaded_version=loaded),
        reboot_required=reboot,
        reboot_reason=reason,
    )


if __name__ == '__main__':
    main()

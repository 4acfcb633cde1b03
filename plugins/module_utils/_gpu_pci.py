# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""NVIDIA GPU detection from sysfs for aistack.infra (private: not a public API).

Reads ``<sysfs>/bus/pci/devices/*/{vendor,class,device}`` (no driver needed: the PCI bus lists a
GPU before any NVIDIA software is installed), the driver bound to each device, and the version
of the loaded ``nvidia`` kernel module (``<sysfs>/module/nvidia/version``). ``reboot_state``
compares it with the version of the module installed on disk (``modinfo``) to say whether the
host needs a reboot before the driver it has installed is the one that runs.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

NVIDIA_VENDOR = '0x10de'
# PCI base class 0x03 = display controller (0x0300 VGA, 0x0302 3D controller: data-centre GPUs).
# The GPU's HDMI audio function (class 0x0403) and USB-C controller (0x0c03) are not GPUs.
DISPLAY_CLASS_PREFIX = '0x03'


def _read(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except (IOError, OSError):
        return None


def nvidia_pci_devices(sysfs_root='/sys'):
    """The NVIDIA display controllers on the PCI bus, sorted by PCI address (the order in which
    the driver numbers them by default, CUDA_DEVICE_ORDER=PCI_BUS_ID / nvidia-smi)."""
    base = os.path.join(sysfs_root, 'bus', 'pci', 'devices')
    try:
        addresses = sorted(os.listdir(base))
    except (IOError, OSError):
        return []
    devices = []
    for address in addresses:
        path = os.path.join(base, address)
        vendor = (_read(os.path.join(path, 'vendor')) or '').lower()
        pci_class = (_read(os.path.join(path, 'class')) or '').lower()
        if vendor != NVIDIA_VENDOR or not pci_class.startswith(DISPLAY_CLASS_PREFIX):
            continue
        driver_link = os.path.join(path, 'driver')
        driver = os.path.basename(os.readlink(driver_link)) if os.path.islink(driver_link) else None
        devices.append({
            'pci_address': address,
            'vendor_id': vendor,
            'device_id': (_read(os.path.join(path, 'device')) or '').lower() or None,
            'class': pci_class,
            'driver': driver,
        })
    return devices


def loaded_module_version(sysfs_root='/sys'):
    """Version of the loaded ``nvidia`` kernel module, or None when it is not loaded."""
    return _read(os.path.join(sysfs_root, 'module', 'nvidia', 'version')) or None


def reboot_state(devices, installed_version, loaded_version):
    """(reboot_required, reason). A reboot is needed when a GPU is present and the driver module
    installed on disk is not the one running: a different version is loaded (upgrade without
    reboot), or none is loaded while a GPU is still held by nouveau or no driver."""
    if not devices or not installed_version:
        return False, None
    if loaded_version and loaded_version != installed_version:
        return True, ('the nvidia kernel module installed on disk is %s but %s is loaded: '
                      'reboot to run the installed driver' % (installed_version, loaded_version))
    if not loaded_version:
        held = sorted(set(d['driver'] for d in devices if d['driver'] and d['driver'] != 'nvidia'))
        if held:
            return True, ('the nvidia kernel module %s is installed but the GPUs are bound to %s: reboot '
                          '(the driver packages blacklist it)' % (installed_version, ', '.join(held)))
        return True, ('the nvidia kernel module %s is installed but not loaded: reboot (or modprobe nvidia)'
                      % installed_version)
    return False, None

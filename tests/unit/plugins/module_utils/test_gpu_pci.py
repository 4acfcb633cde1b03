# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""NVIDIA GPU detection from sysfs (module_utils/_gpu_pci.py and the gpu_pci_info module), fed
fake sysfs trees laid out as the kernel does: bus/pci/devices/<address>/{vendor,class,device},
a driver symlink to bus/pci/drivers/<name>, module/nvidia/version. The seed's server (four RTX
4000 Ada, each with its HDMI audio function) is one of them; this machine's own /sys has none.
"""
import os

import pytest

from ansible_collections.aistack.infra.plugins.module_utils._gpu_pci import (
    loaded_module_version,
    nvidia_pci_devices,
    reboot_state,
)
from lib.ansible_run import run_module

RTX_4000_ADA = "0x27b2"


def pci(root, address, vendor, pci_class, device="0x0001", driver=None):
    path = root / "bus" / "pci" / "devices" / address
    path.mkdir(parents=True)
    (path / "vendor").write_text(vendor + "\n")
    (path / "class").write_text(pci_class + "\n")
    (path / "device").write_text(device + "\n")
    if driver:
        target = root / "bus" / "pci" / "drivers" / driver
        target.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path / "driver")


def seed_server(root, driver="nvidia", loaded="550.144.03"):
    """Four GPUs on 01,21,41,61 with their audio functions, an Intel host bridge, virtio disks."""
    pci(root, "0000:00:00.0", "0x8086", "0x060000")
    pci(root, "0000:00:03.0", "0x1af4", "0x010000", driver="virtio-pci")
    for bus in ("61", "01", "41", "21"):  # listed out of order: the result is sorted
        pci(root, "0000:%s:00.0" % bus, "0x10de", "0x030000", RTX_4000_ADA, driver=driver)
        pci(root, "0000:%s:00.1" % bus, "0x10de", "0x040300", "0x22bc", driver="snd_hda_intel")
    if loaded:
        mod = root / "module" / "nvidia"
        mod.mkdir(parents=True)
        (mod / "version").write_text(loaded + "\n")


def test_seed_server_four_gpus_sorted_without_audio_functions(tmp_path):
    seed_server(tmp_path)
    devices = nvidia_pci_devices(str(tmp_path))
    assert [d["pci_address"] for d in devices] == ["0000:01:00.0", "0000:21:00.0", "0000:41:00.0", "0000:61:00.0"]
    assert {d["device_id"] for d in devices} == {RTX_4000_ADA}
    assert {d["driver"] for d in devices} == {"nvidia"}
    assert loaded_module_version(str(tmp_path)) == "550.144.03"


def test_3d_controller_class_counts_and_uppercase_is_read(tmp_path):
    pci(tmp_path, "0000:17:00.0", "0x10DE", "0x030200", "0x2330")  # H100 SXM: 3D controller, no driver
    devices = nvidia_pci_devices(str(tmp_path))
    assert devices == [{"pci_address": "0000:17:00.0", "vendor_id": "0x10de", "device_id": "0x2330",
                        "class": "0x030200", "driver": None}]


def test_no_nvidia_device(tmp_path):
    pci(tmp_path, "0000:00:02.0", "0x1234", "0x030000")  # QEMU's VGA: a display controller, not NVIDIA
    pci(tmp_path, "0000:00:1f.3", "0x10de", "0x040300")   # NVIDIA audio alone is no GPU
    assert nvidia_pci_devices(str(tmp_path)) == []
    assert loaded_module_version(str(tmp_path)) is None


def test_no_pci_bus_at_all(tmp_path):
    assert nvidia_pci_devices(str(tmp_path / "absent")) == []


@pytest.mark.parametrize("installed,loaded,drivers,expect,reason", [
    (None, None, [None], False, None),                               # nothing installed yet
    ("550.144.03", "550.144.03", ["nvidia"], False, None),           # running what is installed
    ("550.163.01", "550.144.03", ["nvidia"], True, "installed on disk is 550.163.01 but 550.144.03 is loaded"),
    ("550.163.01", None, ["nouveau"], True, "GPUs are bound to nouveau"),
    ("535.247.01", None, [None], True, "installed but not loaded"),
])
def test_reboot_state(installed, loaded, drivers, expect, reason):
    devices = [{"pci_address": "0000:01:00.0", "driver": d} for d in drivers]
    required, why = reboot_state(devices, installed, loaded)
    assert required is expect
    assert (why is None) if reason is None else (reason in why)


def test_no_gpu_never_needs_a_reboot():
    assert reboot_state([], "550.163.01", "550.144.03") == (False, None)


def test_module_on_a_fake_tree_and_on_this_machine(tmp_path):
    seed_server(tmp_path, driver="nouveau", loaded=None)
    result = run_module("gpu_pci_info", {"sysfs_root": str(tmp_path), "modinfo": False}, check=True)
    assert not result["failed"] and not result["changed"]
    assert result["gpu_count"] == 4 and [d["driver"] for d in result["devices"]] == ["nouveau"] * 4
    assert result["driver"] == {"installed_version": None, "loaded_version": None}
    assert result["reboot_required"] is False
    # This machine's real /sys and modinfo (no NVIDIA device, no nvidia module here).
    real = run_module("gpu_pci_info", {})
    assert not real["failed"] and not real["changed"]
    assert real["gpu_count"] == len(nvidia_pci_devices("/sys"))

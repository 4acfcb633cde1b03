# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU pins in the roles that take one: the milvus role's milvus_gpus / milvus_memory / milvus_cpus
are checked in its preflight (before anything changes) against the host: this machine's real PCI
bus (no NVIDIA device), or the gpu role's gpu_device_count fact standing for the seed's 4 GPUs.
Real ansible-playbook, in check mode, limited to the role's preflight tag (tests/lib/ansible_run.py).
container_service's pins run on the real engine in tests/integration/test_container_service_gpus.py.
"""
import pytest

from lib.ansible_run import assert_probe_case, role_preflight_probe

MILVUS = {
    "milvus_object_storage": "local",
    "milvus_authorization_enabled": True,
    "milvus_root_password": "R00t-password-for-milvus",
    "milvus_collections": [],
}


def _milvus(**changes):
    variables = dict(MILVUS)
    variables.update(changes)
    return variables


CASES = {
    "no-pin": (_milvus(), None),
    "seed-gpu-2-of-4": (_milvus(milvus_gpus=[2], milvus_memory="1g", milvus_cpus=1, gpu_device_count=4), None),
    "all-gpus-of-4": (_milvus(milvus_gpus="all", gpu_device_count=4), None),
    "gpu-on-this-gpu-less-host": (_milvus(milvus_gpus=[2]), [
        "milvus_gpus, milvus_memory or milvus_cpus do not fit",
        "milvus.standalone.gpus: GPU 2 beyond the host, which has no GPU"]),
    "gpu-beyond-4": (_milvus(milvus_gpus="3,4", gpu_device_count=4),
                     ["milvus.standalone.gpus: GPU 4 beyond the host, which has 4 GPUs (indices 0-3)"]),
    # The probe play gathers no facts: the host's figures are given as the facts the check reads.
    "memory-above-host": (_milvus(milvus_memory="64g", milvus_cpus=48, ansible_facts={"memtotal_mb": 32768, "processor_vcpus": 16}),
                          ["milvus.standalone.memory 64g (65536 MB) is above the host memory (32768 MB)",
                           "milvus.standalone.cpus 48 is above the host's 16 CPUs"]),
    "bad-memory": (_milvus(milvus_memory="lots"), ["milvus.standalone.memory: 'lots' is not a memory size"]),
}


@pytest.fixture(scope="module")
def probe():
    return role_preflight_probe("milvus", CASES, "milvus_preflight")


@pytest.mark.parametrize("case", sorted(CASES))
def test_milvus_pin_cases(probe, case):
    results, _ran, _out = probe
    variables, expect = CASES[case]
    assert_probe_case(results, case, expect)

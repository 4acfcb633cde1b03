# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU pins (module_utils/_gpu_pins.py, filter plugin gpu_pins): the seed's allocation table on its
four-GPU host, every refusal (indices beyond the host, overlaps, memory and CPUs above the host,
malformed values) and the device_requests handed to community.docker.docker_container.
"""
import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.aistack.infra.plugins.filter.gpu_pins import FilterModule
from ansible_collections.aistack.infra.plugins.module_utils._gpu_pins import PinError, device_requests, gpu_indices, memory_mb, pin_errors

# The seed: LLM server on GPUs 0,1 with 64 GB; vector DB and training on GPU 2; API server on GPU 3.
SEED = {
    "llm_server": {"gpus": [0, 1], "memory": "64g", "cpus": 16},
    "vector_db": {"gpus": [2], "memory": "32g", "cpus": 8},
    "training": {"gpus": [2], "memory": "48g", "cpus": 8},
    "api_server": {"gpus": [3], "memory": "16g", "cpus": 4},
}
HOST_MB = 256 * 1024


def test_seed_table_fits_its_host_with_gpu_2_shared():
    assert pin_errors(SEED, 4, HOST_MB, 32, allow_shared=[2]) == []


def test_seed_table_without_sharing_names_the_overlap():
    assert pin_errors(SEED, 4, HOST_MB, 32) == [
        "GPU 2 is pinned by training and vector_db: add 2 to gpu_allow_shared if they may share it"]


def test_indices_beyond_the_host():
    errors = pin_errors(SEED, 2, HOST_MB, 32, allow_shared=[2])
    assert "gpu_allocations.vector_db.gpus: GPU 2 beyond the host, which has 2 GPUs (indices 0-1)" in errors
    assert "gpu_allocations.api_server.gpus: GPU 3 beyond the host, which has 2 GPUs (indices 0-1)" in errors
    assert pin_errors({"x": {"gpus": [0]}}, 0) == ["gpu_allocations.x.gpus: GPU 0 beyond the host, which has no GPU"]
    assert pin_errors({"x": {"gpus": [1]}}, 1) == ["gpu_allocations.x.gpus: GPU 1 beyond the host, which has 1 GPU (indices 0-0)"]


def test_memory_and_cpus_above_the_host():
    errors = pin_errors({"llm_server": {"gpus": [0, 1], "memory": "64g", "cpus": 48}}, 4, 32 * 1024, 32)
    assert errors == ["gpu_allocations.llm_server.memory 64g (65536 MB) is above the host memory (32768 MB)",
                      "gpu_allocations.llm_server.cpus 48 is above the host's 32 CPUs"]


@pytest.mark.parametrize("pin,expect", [
    ({"gpus": ["a"]}, "gpu_allocations.x.gpus: 'a' is not a GPU index"),
    ({"gpus": [-1]}, "gpu_allocations.x.gpus: -1 is not a GPU index (they start at 0)"),
    ({"gpus": [1, 1]}, "gpu_allocations.x.gpus: GPU 1 is listed twice"),
    ({"gpus": {"0": 1}}, "is not a list of GPU indices or \"all\""),
    ({"gpus": [0], "memory": "lots"}, "gpu_allocations.x.memory: 'lots' is not a memory size"),
    ({"gpus": [0], "memory": "0g"}, "gpu_allocations.x.memory must be above 0"),
    ({"gpus": [0], "cpus": "many"}, "gpu_allocations.x.cpus: 'many' is not a number of CPUs"),
    ({"gpus": [0], "cpus": 0}, "gpu_allocations.x.cpus must be a number above 0, not 0"),
    ({"gpus": [0], "gpu": [1]}, "gpu_allocations.x has unknown keys gpu (allowed: gpus, memory, cpus)"),
    ("0,1", "gpu_allocations.x must be a mapping with gpus, memory and cpus"),
])
def test_malformed_pins(pin, expect):
    errors = pin_errors({"x": pin}, 4, HOST_MB, 32)
    assert len(errors) == 1 and expect in errors[0], errors


def test_all_overlaps_every_other_pin_unless_shared():
    table = {"everything": {"gpus": "all"}, "api": {"gpus": "3"}}
    assert pin_errors(table, 4) == ["GPU 3 is pinned by api and everything: add 3 to gpu_allow_shared if they may share it"]
    assert pin_errors(table, 4, allow_shared=[3]) == []


def test_not_a_mapping_and_bad_allow_shared():
    assert pin_errors([1], 4) == ["gpu_allocations must be a mapping of container name to {gpus, memory, cpus}, not list"]
    assert pin_errors({}, 4, allow_shared=["x"]) == ["gpu_allow_shared: 'x' is not a GPU index (an integer, as nvidia-smi numbers the GPUs)"]


@pytest.mark.parametrize("value,mb", [("64g", 65536), ("64G", 65536), ("512m", 512), ("1.5g", 1536),
                                      (1073741824, 1024), ("1073741824", 1024), ("2gb", 2048), ("", None), (None, None)])
def test_memory_mb(value, mb):
    assert memory_mb(value) == mb


def test_gpu_indices_forms():
    assert gpu_indices("0, 1") == [0, 1]
    assert gpu_indices([3, "2"]) == [2, 3]
    assert gpu_indices("all", 2) == [0, 1]
    with pytest.raises(PinError):
        gpu_indices("all")
    with pytest.raises(PinError):
        gpu_indices([True])


def test_device_requests_rendering():
    assert device_requests([0, 1]) == [{"driver": "nvidia", "device_ids": ["0", "1"], "capabilities": [["gpu"]]}]
    assert device_requests("2") == [{"driver": "nvidia", "device_ids": ["2"], "capabilities": [["gpu"]]}]
    assert device_requests("all") == [{"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}]
    assert device_requests([]) == [] and device_requests(None) == []
    assert device_requests([3], capabilities=[["gpu", "utility", "compute"]]) == [
        {"driver": "nvidia", "device_ids": ["3"], "capabilities": [["gpu", "utility", "compute"]]}]


def test_filters_as_ansible_calls_them():
    filters = FilterModule().filters()
    assert filters["gpu_pin_errors"](SEED, "4", "262144", "32", [2]) == []
    assert filters["gpu_pin_errors"]({"x": {"gpus": [4]}}, 4, variable="container_service_gpus") == [
        "container_service_gpus.x.gpus: GPU 4 beyond the host, which has 4 GPUs (indices 0-3)"]
    assert filters["gpu_device_requests"]([1, 0]) == [{"driver": "nvidia", "device_ids": ["0", "1"], "capabilities": [["gpu"]]}]
    with pytest.raises(AnsibleFilterError, match="gpu_device_requests: 'x' is not a GPU index"):
        filters["gpu_device_requests"](["x"])

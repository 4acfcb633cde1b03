# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters for GPU-pinned containers: ``gpu_pin_errors`` (validate an allocation table against
the host) and ``gpu_device_requests`` (a pin's GPUs as docker_container's device_requests).
The logic is in module_utils/_gpu_pins.py."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.aistack.infra.plugins.module_utils._gpu_pins import PinError, device_requests, pin_errors


def gpu_pin_errors(allocations, gpu_count, host_memory_mb=None, host_cpus=None, allow_shared=None, variable='gpu_allocations'):
    """Sentences naming each problem of ``allocations``; an empty list when it fits the host."""
    count = None if gpu_count is None else int(gpu_count)
    memory = None if host_memory_mb in (None, '') else int(host_memory_mb)
    cpus = None if host_cpus in (None, '') else int(host_cpus)
    return pin_errors(allocations, count, memory, cpus, allow_shared or [], variable)


def gpu_device_requests(gpus, gpu_count=None, capabilities=None):
    try:
        return device_requests(gpus, None if gpu_count is None else int(gpu_count), capabilities)
    except PinError as exc:
        raise AnsibleFilterError('gpu_device_requests: %s' % exc)


class FilterModule(object):
    def filters(self):
        return {
            'gpu_pin_errors': gpu_pin_errors,
            'gpu_device_requests': gpu_device_requests,
        }

# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""GPU pins of containers for aistack.infra (private: not a public API).

A pin gives one container GPU indices (as nvidia-smi numbers them), a memory limit (Docker's
notation: 512m, 64g, or bytes) and a CPU limit. ``pin_errors`` checks a whole allocation table
against the host (its GPU count, memory and CPUs) and returns every problem as a sentence that
names the variable, so a play fails before anything changes; ``device_requests`` turns a pin's
GPUs into community.docker.docker_container's ``device_requests``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

_MEMORY = re.compile(r'^\s*([0-9]+(?:\.[0-9]+)?)\s*([bkmgt]?)b?\s*$', re.IGNORECASE)
_FACTOR = {'': 1, 'b': 1, 'k': 1024, 'm': 1024 ** 2, 'g': 1024 ** 3, 't': 1024 ** 4}


class PinError(ValueError):
    pass


def memory_mb(value):
    """Docker's memory notation (``64g``, ``512m``, ``1073741824``) in MiB; None for empty."""
    if value is None or value == '':
        return None
    if isinstance(value, bool):
        raise PinError('%r is not a memory size' % (value,))
    if isinstance(value, (int, float)):
        number, unit = float(value), ''
    else:
        match = _MEMORY.match(str(value))
        if not match:
            raise PinError('%r is not a memory size (a number with b, k, m, g or t, as in 64g)' % (value,))
        number, unit = float(match.group(1)), match.group(2).lower()
    return number * _FACTOR[unit] / 1024 ** 2


def gpu_indices(gpus, gpu_count=None):
    """A pin's ``gpus`` as a sorted list of ints: a list of indices, a comma-separated string
    (``"0,1"``), or ``all`` (every GPU of the host, which needs ``gpu_count``)."""
    if gpus is None or gpus == '' or gpus == []:
        return []
    if isinstance(gpus, str):
        if gpus.strip().lower() == 'all':
            if gpu_count is None:
                raise PinError('"all" needs the host\'s GPU count')
            return list(range(gpu_count))
        gpus = [part for part in gpus.split(',') if part.strip()]
    if not isinstance(gpus, (list, tuple)):
        raise PinError('%r is not a list of GPU indices or "all"' % (gpus,))
    indices = []
    for item in gpus:
        if isinstance(item, bool):
            raise PinError('%r is not a GPU index' % (item,))
        try:
            index = int(str(item).strip())
        except ValueError:
            raise PinError('%r is not a GPU index (an integer, as nvidia-smi numbers the GPUs)' % (item,))
        if index < 0:
            raise PinError('%d is not a GPU index (they start at 0)' % index)
        if index in indices:
            raise PinError('GPU %d is listed twice' % index)
        indices.append(index)
    return sorted(indices)


def pin_errors(allocations, gpu_count, host_memory_mb=None, host_cpus=None, allow_shared=(), variable='gpu_allocations'):
    """Every problem of an allocation table ``{name: {gpus, memory, cpus}}``, as sentences."""
    errors = []
    if not isinstance(allocations, dict):
        return ['%s must be a mapping of container name to {gpus, memory, cpus}, not %s' % (variable, type(allocations).__name__)]
    try:
        shared = set(gpu_indices(list(allow_shared) if allow_shared else [], gpu_count))
    except PinError as exc:
        errors.append('gpu_allow_shared: %s' % exc)
        shared = set()
    users = {}
    for name in sorted(allocations):
        pin = allocations[name]
        where = '%s.%s' % (variable, name)
        if not isinstance(pin, dict):
            errors.append('%s must be a mapping with gpus, memory and cpus' % where)
            continue
        unknown = sorted(set(pin) - set(['gpus', 'memory', 'cpus']))
        if unknown:
            errors.append('%s has unknown keys %s (allowed: gpus, memory, cpus)' % (where, ', '.join(unknown)))
        try:
            indices = gpu_indices(pin.get('gpus'), gpu_count)
        except PinError as exc:
            errors.append('%s.gpus: %s' % (where, exc))
            indices = []
        beyond = [i for i in indices if gpu_count is not None and i >= gpu_count]
        if beyond:
            have = 'has no GPU' if gpu_count == 0 else 'has %d GPU%s (indices 0-%d)' % (
                gpu_count, '' if gpu_count == 1 else 's', gpu_count - 1)
            errors.append('%s.gpus: GPU %s beyond the host, which %s'
                          % (where, ', '.join(str(i) for i in beyond), have))
        for index in indices:
            users.setdefault(index, []).append(name)
        try:
            mb = memory_mb(pin.get('memory'))
        except PinError as exc:
            errors.append('%s.memory: %s' % (where, exc))
            mb = None
        if mb is not None and mb <= 0:
            errors.append('%s.memory must be above 0' % where)
        elif mb is not None and host_memory_mb is not None and mb > host_memory_mb:
            errors.append('%s.memory %s (%d MB) is above the host memory (%d MB)'
                          % (where, pin.get('memory'), mb, host_memory_mb))
        cpus = pin.get('cpus')
        if cpus not in (None, ''):
            try:
                cpus_value = float(cpus)
            except (TypeError, ValueError):
                errors.append('%s.cpus: %r is not a number of CPUs' % (where, cpus))
            else:
                if isinstance(cpus, bool) or cpus_value <= 0:
                    errors.append('%s.cpus must be a number above 0, not %r' % (where, cpus))
                elif host_cpus is not None and cpus_value > host_cpus:
                    errors.append('%s.cpus %s is above the host\'s %d CPUs' % (where, cpus, host_cpus))
    for index in sorted(users):
        names = users[index]
        if len(names) > 1 and index not in shared:
            errors.append('GPU %d is pinned by %s: add %d to gpu_allow_shared if they may share it'
                          % (index, ' and '.join(names), index))
    return errors


def device_requests(gpus, gpu_count=None, capabilities=None):
    """community.docker.docker_container's device_requests for a pin's ``gpus`` ([] for none):
    the listed indices as device_ids, or count -1 for ``all``."""
    caps = capabilities if capabilities else [['gpu']]
    if isinstance(gpus, str) and gpus.strip().lower() == 'all':
        return [{'driver': 'nvidia', 'count': -1, 'capabilities': caps}]
    indices = gpu_indices(gpus, gpu_count)
    if not indices:
        return []
    return [{'driver': 'nvidia', 'device_ids': [str(i) for i in indices], 'capabilities': caps}]

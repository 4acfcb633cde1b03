# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the metadata of a GGUF model file (llama.cpp's format) without loading its tensors.

Layout (GGUF version 2 and 3, little-endian): the magic ``GGUF``, uint32 version, uint64 tensor
count, uint64 key/value count, then each key (uint64 length + UTF-8 bytes), a uint32 value type
and the value. Arrays hold a uint32 element type, a uint64 count and the elements; they are
skipped (a tokenizer's vocabulary is one), only their length is kept.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import struct

GGUF_MAGIC = b'GGUF'
# value type -> struct format of a fixed-size value
_FIXED = {0: '<B', 1: '<b', 2: '<H', 3: '<h', 4: '<I', 5: '<i', 6: '<f', 7: '<?', 10: '<Q', 11: '<q', 12: '<d'}
_STRING = 8
_ARRAY = 9


class GGUFError(Exception):
    """The file is not a GGUF file this reader understands."""


class _Reader(object):
    def __init__(self, handle):
        self.handle = handle

    def read(self, size):
        data = self.handle.read(size)
        if len(data) != size:
            raise GGUFError('the file ends inside its metadata (truncated)')
        return data

    def unpack(self, fmt):
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self):
        length = self.unpack('<Q')
        if length > 1 << 24:
            raise GGUFError('a metadata string claims %d bytes' % length)
        return self.read(length).decode('utf-8', errors='replace')

    def value(self, vtype):
        if vtype in _FIXED:
            return self.unpack(_FIXED[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype = self.unpack('<I')
            count = self.unpack('<Q')
            if etype in _FIXED:
                self.handle.seek(struct.calcsize(_FIXED[etype]) * count, 1)
            elif etype == _STRING:
                for _i in range(count):
                    self.handle.seek(self.unpack('<Q'), 1)
            else:
                # Nested arrays do not occur in llama.cpp's writers; skip them one by one.
                for _i in range(count):
                    self.value(etype)
            return {'array_of': etype, 'length': count}
        raise GGUFError('unknown metadata value type %d' % vtype)


def read_metadata(path):
    """Return (version, tensor_count, {key: value}) of the GGUF file at path (arrays summarised)."""
    with open(path, 'rb') as handle:
        reader = _Reader(handle)
        if reader.read(4) != GGUF_MAGIC:
            raise GGUFError('%s is not a GGUF file (no GGUF magic)' % path)
        version = reader.unpack('<I')
        if version not in (2, 3):
            raise GGUFError('GGUF version %d is not supported (2 and 3 are)' % version)
        tensor_count = reader.unpack('<Q')
        kv_count = reader.unpack('<Q')
        metadata = {}
        for _i in range(kv_count):
            key = reader.string()
            metadata[key] = reader.value(reader.unpack('<I'))
    return version, tensor_count, metadata


def model_summary(path):
    """The facts a server role needs: architecture, trained context length, name, layer count."""
    version, tensor_count, metadata = read_metadata(path)
    arch = metadata.get('general.architecture')
    if not isinstance(arch, str) or not arch:
        raise GGUFError('%s has no general.architecture in its metadata' % path)
    context_length = metadata.get('%s.context_length' % arch)
    block_count = metadata.get('%s.block_count' % arch)
    scalars = dict((k, v) for k, v in metadata.items() if not isinstance(v, dict))
    return {
        'gguf_version': version,
        'tensor_count': tensor_count,
        'architecture': arch,
        'name': metadata.get('general.name'),
        'context_length': int(context_length) if context_length is not None else None,
        'block_count': int(block_count) if block_count is not None else None,
        'file_type': metadata.get('general.file_type'),
        'metadata': scalars,
    }

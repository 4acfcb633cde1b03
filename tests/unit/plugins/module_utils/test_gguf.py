"""Unit tests for plugins/module_utils/_gguf.py: GGUF header parsing on files written here."""
import struct

import pytest

from ansible_collections.aistack.infra.plugins.module_utils._gguf import GGUFError, model_summary, read_metadata


def gguf_string(text):
    data = text.encode('utf-8')
    return struct.pack('<Q', len(data)) + data


def gguf_file(path, kvs, version=3, magic=b'GGUF'):
    """Write a GGUF header with the given [(key, type, packed value)] and no tensor data."""
    body = magic + struct.pack('<IQQ', version, 0, len(kvs))
    for key, vtype, value in kvs:
        body += gguf_string(key) + struct.pack('<I', vtype) + value
    path.write_bytes(body)
    return str(path)


def llama_like(path, context_length=4096):
    tokens = b''.join(gguf_string(t) for t in ['<s>', '</s>', 'hello'])
    return gguf_file(path, [
        ('general.architecture', 8, gguf_string('llama')),
        ('general.name', 8, gguf_string('Tiny')),
        ('llama.context_length', 4, struct.pack('<I', context_length)),
        ('llama.block_count', 4, struct.pack('<I', 22)),
        ('llama.rope.freq_base', 6, struct.pack('<f', 10000.0)),
        ('tokenizer.ggml.tokens', 9, struct.pack('<IQ', 8, 3) + tokens),
        ('tokenizer.ggml.scores', 9, struct.pack('<IQ', 6, 3) + struct.pack('<3f', 0.0, 0.0, -1.0)),
        ('general.file_type', 4, struct.pack('<I', 15)),
        ('tokenizer.ggml.add_bos_token', 7, struct.pack('<?', True)),
    ])


def test_summary_reads_the_trained_context(tmp_path):
    summary = model_summary(llama_like(tmp_path / 'm.gguf', 131072))
    assert summary['architecture'] == 'llama'
    assert summary['context_length'] == 131072
    assert summary['block_count'] == 22
    assert summary['name'] == 'Tiny'
    assert summary['file_type'] == 15
    # Arrays are skipped and left out of the scalar metadata; keys after them are still read.
    assert 'tokenizer.ggml.tokens' not in summary['metadata']
    assert summary['metadata']['tokenizer.ggml.add_bos_token'] is True


def test_arrays_are_summarised(tmp_path):
    _version, _tensors, metadata = read_metadata(llama_like(tmp_path / 'm.gguf'))
    assert metadata['tokenizer.ggml.tokens'] == {'array_of': 8, 'length': 3}


def test_not_gguf(tmp_path):
    with pytest.raises(GGUFError, match='not a GGUF file'):
        model_summary(gguf_file(tmp_path / 'x.bin', [], magic=b'GGML'))


def test_old_version_refused(tmp_path):
    with pytest.raises(GGUFError, match='version 1'):
        model_summary(gguf_file(tmp_path / 'v1.gguf', [], version=1))


def test_truncated(tmp_path):
    path = llama_like(tmp_path / 'm.gguf')
    with open(path, 'rb') as handle:
        head = handle.read(60)
    (tmp_path / 't.gguf').write_bytes(head)
    with pytest.raises(GGUFError, match='truncated'):
        model_summary(str(tmp_path / 't.gguf'))


def test_no_architecture(tmp_path):
    path = gguf_file(tmp_path / 'n.gguf', [('general.name', 8, gguf_string('x'))])
    with pytest.raises(GGUFError, match='general.architecture'):
        model_summary(path)

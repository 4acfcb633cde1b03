"""Unit tests for plugins/modules/service_health.py: argument handling, results and failure summary."""
import json
import socket

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.aistack.infra.plugins.modules import service_health


def run(capsys, args):
    """Run the module's main(); return (exit code, result dict)."""
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            service_health.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture()
def listener():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        sock.listen(4)
        yield sock.getsockname()[1]


def closed_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_healthy_run_is_never_changed(capsys, listener):
    code, result = run(capsys, {'probes': [{'name': 'a', 'type': 'tcp', 'host': '127.0.0.1', 'port': listener}]})
    assert code == 0
    assert result['changed'] is False and result['healthy'] is True
    assert result['msg'] == 'all 1 probe(s) healthy'
    probe = result['probes'][0]
    assert probe['ok'] is True and probe['attempts'] == 1 and probe['error'] is None
    assert probe['detail']['address'] == '127.0.0.1:%d' % listener


def test_check_mode_still_probes(capsys, listener):
    code, result = run(capsys, {'_ansible_check_mode': True,
                                'probes': [{'name': 'a', 'type': 'tcp', 'host': '127.0.0.1', 'port': listener}]})
    assert code == 0 and result['probes'][0]['ok'] is True and result['changed'] is False


def test_failure_summary_names_each_failed_probe(capsys, listener):
    port = closed_port()
    code, result = run(capsys, {'delay': 0, 'retries': 1, 'probes': [
        {'name': 'up', 'type': 'tcp', 'host': '127.0.0.1', 'port': listener},
        {'name': 'down1', 'type': 'tcp', 'host': '127.0.0.1', 'port': port},
        {'name': 'down2', 'type': 'http', 'url': 'http://127.0.0.1:%d/' % port, 'retries': 0},
    ]})
    assert code == 1 and result['failed'] is True and result['healthy'] is False
    assert result['msg'].startswith('2 of 3 probe(s) failed: down1 (tcp): cannot connect to 127.0.0.1:%d' % port)
    assert 'down2 (http): GET http://127.0.0.1:%d/' % port in result['msg']
    assert [p['attempts'] for p in result['probes']] == [1, 2, 1]


def test_fail_on_error_false_reports_without_failing(capsys):
    code, result = run(capsys, {'fail_on_error': False, 'probes': [
        {'name': 'down', 'type': 'tcp', 'host': '127.0.0.1', 'port': closed_port()}]})
    assert code == 0 and 'failed' not in result and result['healthy'] is False
    assert result['msg'].startswith('1 of 1 probe(s) failed: down (tcp)')


def test_malformed_probe_fails_before_running_anything(capsys, listener):
    code, result = run(capsys, {'probes': [
        {'name': 'web', 'type': 'http', 'url': 'http://127.0.0.1:%d/' % listener, 'topics': ['x']},
        {'name': 'db', 'type': 'tcp', 'host': 'h'}]})
    assert code == 1 and result['probes'] == []
    assert "probe 'web' (type http): option 'topics' is not supported by http probes; allowed options:" in result['msg']
    assert "probe 'db' (type tcp): option 'port' is required" in result['msg']


def test_unknown_key_is_rejected_by_the_argument_spec(capsys):
    code, result = run(capsys, {'probes': [{'name': 'x', 'type': 'tcp', 'host': 'h', 'port': 1, 'prot': 2}]})
    assert code == 1 and 'prot' in result['msg'] and 'Supported parameters include' in result['msg']


def test_bad_module_level_values(capsys):
    code, result = run(capsys, {'timeout': 0, 'probes': [{'name': 'x', 'type': 'tcp', 'host': 'h', 'port': 1}]})
    assert code == 1 and 'timeout > 0' in result['msg']


def test_passwords_are_masked_in_the_result(capsys):
    code, result = run(capsys, {'fail_on_error': False, 'probes': [
        {'name': 'r', 'type': 'redis', 'host': '127.0.0.1', 'port': closed_port(), 'password': 'hunter2-secret'},
        {'name': 'm', 'type': 'milvus', 'uri': 'http://127.0.0.1:1', 'token': 'tok-secret-123', 'timeout': 1}]})
    text = json.dumps(result)
    assert 'hunter2-secret' not in text and 'tok-secret-123' not in text

"""Unit tests for plugins/modules/pgvector_index.py: argument spec, main()'s plumbing and failure paths.

The manager and the connection are replaced; what the manager does is covered in
tests/unit/plugins/module_utils/test_pgvector.py and, against a real server, in tests/integration.
"""
import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.aistack.infra.plugins.module_utils._postgres_conn import (
    POSTGRES_COMMON_ARGS,
    PostgresConnectionError,
    connection_kwargs,
    is_local_server,
    postgres_common_argument_spec,
)
from ansible_collections.aistack.infra.plugins.module_utils._pgvector import OPCLASS_NAMES, PgvectorIndexError
from ansible_collections.aistack.infra.plugins.modules import pgvector_index

BASE = {'login_host': '127.0.0.1', 'login_password': 'secret', 'db': 'rag', 'table': 'items', 'column': 'embedding'}


def run(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            pgvector_index.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


class FakeConn:
    closed = False

    def close(self):
        self.closed = True


@pytest.fixture()
def wiring(monkeypatch):
    """Replace connect() and the manager; record what main() handed them."""
    seen = {'connects': [], 'conn': FakeConn()}

    def fake_connect(params, autocommit=False, application_name=None):
        seen['connects'].append((dict(params), autocommit, application_name))
        if seen.get('connect_error'):
            raise PostgresConnectionError(seen['connect_error'])
        return seen['conn']

    class FakeManager:
        def __init__(self, conn, params, check_mode=False, local_server=False):
            seen['manager'] = {'params': dict(params), 'check_mode': check_mode, 'local_server': local_server}
            self.executed = ['SET maintenance_work_mem = \'64MB\'']

        def run(self):
            if seen.get('error'):
                raise seen['error']
            return dict(seen.get('result') or {
                'changed': True, 'executed_queries': list(self.executed), 'index': {'name': 'i'},
                'build_settings': {}, 'build_seconds': 0.5, 'diff': {'before': {}, 'after': {'name': 'i'}},
                'warnings': ['index public.i is invalid; rebuilding it']})

    monkeypatch.setattr(pgvector_index, 'connect', fake_connect)
    monkeypatch.setattr(pgvector_index, 'PgvectorIndexManager', FakeManager)
    return seen


def test_argument_spec_merges_the_connection_options():
    spec = pgvector_index.argument_spec()
    for key in POSTGRES_COMMON_ARGS:
        assert key in spec
    assert spec['login_password']['no_log'] is True
    assert spec['login_port']['default'] == 5432
    assert spec['db']['aliases'] == ['login_db', 'database']
    assert spec['opclass']['choices'] == OPCLASS_NAMES
    assert spec['method'] == {'type': 'str', 'default': 'hnsw', 'choices': ['hnsw', 'ivfflat']}
    assert spec['concurrently']['default'] is True and spec['recreate']['default'] == 'never'
    assert spec['maintenance_work_mem']['default'] == 'auto'
    assert postgres_common_argument_spec() is not POSTGRES_COMMON_ARGS


def test_success_passes_through_and_hides_diff_without_diff_mode(capsys, wiring):
    code, result = run(capsys, dict(BASE))
    assert code == 0 and result['changed'] is True
    assert result['executed_queries'] == ["SET maintenance_work_mem = '64MB'"]
    assert 'diff' not in result
    assert 'index public.i is invalid; rebuilding it' in json.dumps(result['warnings'])
    params, autocommit, app = wiring['connects'][0]
    assert autocommit is True and app == 'aistack.infra.pgvector_index'
    assert params['login_port'] == 5432 and params['ssl_mode'] == 'prefer'
    assert wiring['manager']['local_server'] is True and wiring['manager']['check_mode'] is False
    assert wiring['conn'].closed is True
    assert 'secret' not in json.dumps(result)


def test_diff_and_check_mode_are_forwarded(capsys, wiring):
    code, result = run(capsys, dict(BASE, _ansible_diff=True, _ansible_check_mode=True))
    assert code == 0 and result['diff'] == {'before': {}, 'after': {'name': 'i'}}
    assert wiring['manager']['check_mode'] is True


def test_bad_input_fails_before_connecting(capsys, wiring):
    code, result = run(capsys, dict(BASE, m=120))
    assert code == 1 and result['failed'] is True
    assert result['msg'] == 'm: 120 is out of range; allowed values: 2..100'
    assert wiring['connects'] == []


@pytest.mark.parametrize('args,match', [
    (dict(BASE, opclass='euclid'), 'value of opclass must be one of: bit_hamming_ops'),
    (dict(BASE, method='ivfflat', lists=10, m=8), 'parameters are mutually exclusive: lists|m'),
    ({'login_host': 'h', 'db': 'rag', 'table': 'items'}, 'state is present but all of the following are missing: column'),
    ({'login_host': 'h', 'state': 'absent'}, 'state is absent but any of the following are missing: name, table'),
    (dict(BASE, recreate='always'), 'value of recreate must be one of: never, on_change'),
])
def test_argument_spec_rules(capsys, wiring, args, match):
    code, result = run(capsys, args)
    assert code == 1 and match in result['msg']
    assert wiring['connects'] == []


def test_manager_error_becomes_fail_json_with_details(capsys, wiring):
    wiring['error'] = PgvectorIndexError('index public.i exists with a different definition',
                                         differences=[{'key': 'opclass', 'existing': 'a', 'desired': 'b'}],
                                         diff={'before': {'opclass': 'a'}, 'after': {'opclass': 'b'}})
    code, result = run(capsys, dict(BASE))
    assert code == 1 and result['msg'] == 'index public.i exists with a different definition'
    assert result['differences'][0]['key'] == 'opclass'
    assert 'diff' not in result
    assert result['executed_queries'] == ["SET maintenance_work_mem = '64MB'"]
    code, result = run(capsys, dict(BASE, _ansible_diff=True))
    assert result['diff']['after'] == {'opclass': 'b'}


def test_connection_error(capsys, wiring):
    wiring['connect_error'] = 'unable to connect to database \'rag\' on 127.0.0.1 port 5432 as \'postgres\': refused'
    code, result = run(capsys, dict(BASE))
    assert code == 1 and result['msg'].startswith("unable to connect to database 'rag'")
    assert result['executed_queries'] == []


def test_env_fallbacks(capsys, wiring, monkeypatch):
    monkeypatch.setenv('PGHOST', 'db.example.org')
    monkeypatch.setenv('PGPORT', '6543')
    monkeypatch.setenv('PGUSER', 'rag_admin')
    monkeypatch.setenv('PGPASSWORD', 'from-env')
    monkeypatch.setenv('PGDATABASE', 'ragdb')
    code, _result = run(capsys, {'table': 'items', 'column': 'embedding'})
    assert code == 0
    params = wiring['connects'][0][0]
    assert (params['login_host'], params['login_port'], params['login_user'], params['login_password'],
            params['db']) == ('db.example.org', 6543, 'rag_admin', 'from-env', 'ragdb')
    assert wiring['manager']['local_server'] is False


def test_connection_kwargs_and_locality():
    kwargs = connection_kwargs({'login_host': 'h', 'login_port': 5433, 'login_user': 'u', 'login_password': 'p',
                                'db': 'd', 'ssl_mode': 'verify-full', 'ca_cert': '/ca.pem', 'connect_timeout': 5,
                                'login_unix_socket': None})
    assert kwargs == {'host': 'h', 'port': 5433, 'user': 'u', 'password': 'p', 'dbname': 'd',
                      'sslmode': 'verify-full', 'sslrootcert': '/ca.pem', 'connect_timeout': 5,
                      'application_name': 'aistack.infra'}
    assert connection_kwargs({'login_host': 'h', 'login_unix_socket': '/run/postgresql'})['host'] == '/run/postgresql'
    assert is_local_server({'login_host': None}) and is_local_server({'login_host': '127.0.0.1'})
    assert is_local_server({'login_host': 'localhost'}) and is_local_server({'login_host': '/var/run/postgresql'})
    assert is_local_server({'login_host': 'db', 'login_unix_socket': '/tmp'})
    assert not is_local_server({'login_host': '10.0.0.5'}) and not is_local_server({'login_host': 'db.example.org'})


def test_argument_spec_of_the_search_quality_options():
    spec = pgvector_index.argument_spec()
    assert spec['lists'] == {'type': 'raw'}
    assert spec['min_rows_per_list'] == {'type': 'int', 'default': 50}
    assert spec['retrain_growth_factor'] == {'type': 'float'}
    assert spec['min_recall'] == {'type': 'float'} and spec['recall_check']['default'] is False
    assert spec['search_defaults_roles'] == {'type': 'list', 'elements': 'str', 'default': []}


@pytest.mark.parametrize('extra,msg', [
    (dict(method='ivfflat', retrain_growth_factor=1), 'retrain_growth_factor: 1.0 must be greater than 1'),
    (dict(min_recall=1.5), 'min_recall: 1.5 is outside (0, 1]'),
    (dict(lists='auto'), 'lists: auto sizes the lists of an ivfflat index and applies to method=ivfflat only'),
])
def test_bad_quality_input_fails_before_connecting(capsys, wiring, extra, msg):
    code, result = run(capsys, dict(BASE, **extra))
    assert code == 1 and result['msg'].startswith(msg)
    assert wiring['connects'] == []

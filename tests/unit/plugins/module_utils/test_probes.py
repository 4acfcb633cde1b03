"""Unit tests for plugins/module_utils/_probes.py: probe validation, the runner, and every probe type against fakes."""
import base64
import json
import os
import socket
import socketserver
import tempfile
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.aistack.infra.plugins.module_utils import _probes as P
from ansible_collections.aistack.infra.plugins.module_utils._probes import (
    ProbeError,
    ProbeFailure,
    ProbeRunner,
    build_probes,
    json_lookup,
    summarize,
)
from lib.opensearch_double import OpenSearchDouble, make_test_pki


def one(**probe):
    return build_probes([probe])[0]


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------- validation
def error_of(probes, **kwargs):
    with pytest.raises(ProbeError) as err:
        build_probes(probes, **kwargs)
    return str(err.value)


def test_unknown_option_names_probe_option_and_allowed_options():
    msg = error_of([{'name': 'api', 'type': 'http', 'url': 'http://x/', 'port': 80}])
    assert "probe 'api' (type http): option 'port' is not supported by http probes; allowed options: " in msg
    assert 'body_contains' in msg and 'json_path' in msg and 'url' in msg


def test_missing_required_option_names_probe_and_option():
    msg = error_of([{'name': 'ssh', 'type': 'tcp', 'host': 'h'}])
    assert "probe 'ssh' (type tcp): option 'port' is required; allowed options: delay, host, name, port, retries, " \
           "timeout, type" in msg


def test_every_problem_is_reported_at_once():
    msg = error_of([
        {'type': 'tcp', 'host': 'h', 'port': 1},
        {'name': 'a', 'type': 'tcp', 'host': 'h', 'port': 1},
        {'name': 'a', 'type': 'tcp', 'host': 'h', 'port': 2},
        {'name': 'b', 'type': 'smtp'},
        {'name': 'c'},
        {'name': 'd', 'type': 'kafka', 'bootstrap_servers': ['nohostport'], 'url': 'http://x'},
    ])
    assert "probes[0]: option 'name' is required" in msg
    assert "probe 'a': option 'name' is used by more than one probe" in msg
    assert "probe 'b': option 'type' 'smtp' is not supported; allowed types: docker_container, http, kafka, milvus, " \
           "opensearch, postgres, redis, tcp" in msg
    assert "probe 'c': option 'type' is required" in msg
    assert "probe 'd' (type kafka): option 'url' is not supported by kafka probes" in msg


@pytest.mark.parametrize('probe,fragment', [
    ({'type': 'http', 'url': 'ftp://x/'}, "option url: 'ftp://x/' must be an http:// or https:// URL"),
    ({'type': 'http', 'url': 'http://x/', 'status': 700}, 'option status: [700] must be an HTTP status code'),
    ({'type': 'http', 'url': 'http://x/', 'status': ['ok']}, 'option status'),
    ({'type': 'http', 'url': 'http://x/', 'method': 'FETCH'}, "option method: 'FETCH' is not one of GET"),
    ({'type': 'http', 'url': 'http://x/', 'json_equals': 1}, 'option json_equals: needs json_path'),
    ({'type': 'http', 'url': 'http://x/', 'client_key': '/k'}, 'option client_key: needs client_cert'),
    ({'type': 'tcp', 'host': 'h', 'port': 70000}, 'option port: 70000 must be 1-65535'),
    ({'type': 'postgres', 'ssl_mode': 'always'}, "option ssl_mode: 'always' is not one of disable, allow"),
    ({'type': 'milvus', 'uri': './milvus.db'}, 'local milvus-lite files are not probed'),
    ({'type': 'milvus', 'uri': 'http://m:19530', 'token': 't', 'user': 'u'}, 'give either token or user/password'),
    ({'type': 'opensearch', 'url': 'http://o', 'hosts': ['http://o']}, 'give exactly one of hosts'),
    ({'type': 'opensearch', 'url': 'http://o', 'min_status': 'red'}, "option min_status: 'red' is not one of yellow"),
    ({'type': 'kafka', 'bootstrap_servers': ['k1']}, "option bootstrap_servers: 'k1' is not host:port"),
    ({'type': 'kafka', 'bootstrap_servers': []}, 'option bootstrap_servers: give at least one host:port'),
    ({'type': 'redis', 'user': 'u'}, 'option user: needs password'),
    ({'type': 'docker_container', 'container': 'c', 'expect': 'up'}, "option expect: 'up' is not one of auto"),
    ({'type': 'docker_container', 'container': 'c', 'docker_host': '/var/run/docker.sock'}, 'option docker_host'),
    ({'type': 'tcp', 'host': 'h', 'port': 1, 'retries': -1}, "option 'retries' must be >= 0"),
    ({'type': 'tcp', 'host': 'h', 'port': 1, 'timeout': 0}, "option 'timeout' must be > 0"),
])
def test_bad_values_name_probe_and_option(probe, fragment):
    probe = dict(probe, name='p1')
    msg = error_of([probe])
    assert "probe 'p1' (type %s)" % probe['type'] in msg
    assert fragment in msg


def test_defaults_and_module_level_retries():
    probes = build_probes([{'name': 'a', 'type': 'postgres'},
                           {'name': 'b', 'type': 'http', 'url': 'http://x/', 'status': 204, 'retries': 1, 'delay': 0.5}],
                          retries=3, delay=2.0)
    assert probes[0].opts == {'host': 'localhost', 'port': 5432, 'user': 'postgres', 'password': None,
                              'db': 'postgres', 'ssl_mode': 'prefer', 'ca_path': None, 'extension': None}
    assert (probes[0].retries, probes[0].delay, probes[0].timeout) == (3, 2.0, P.DEFAULT_PROBE_TIMEOUT)
    assert (probes[1].retries, probes[1].delay, probes[1].opts['status']) == (1, 0.5, [204])


def test_none_values_count_as_not_given():
    # Ansible fills every declared sub-option with None: those must not count as given options.
    spec_keys = P.probe_option_spec()
    raw = dict((k, None) for k in spec_keys)
    raw.update(name='x', type='tcp', host='h', port=22)
    assert build_probes([raw])[0].opts == {'host': 'h', 'port': 22}


def test_sensitive_options_are_no_log():
    spec = P.probe_option_spec()
    assert spec['password']['no_log'] is True and spec['token']['no_log'] is True


def test_every_type_option_is_declared_in_the_spec():
    spec = P.probe_option_spec()
    for cls in P.PROBE_TYPES.values():
        assert set(cls.OPTIONS) <= set(spec), cls.TYPE


# -------------------------------------------------------------------------------------- runner
class FakeProbe(P.Probe):
    TYPE = 'fake'

    def __init__(self, name, behaviour, retries=0, delay=0.0, timeout=5.0):
        P.Probe.__init__(self, name, {}, retries, delay, timeout)
        self.behaviour = behaviour
        self.calls = 0
        self.timeouts = []

    def check(self, timeout):
        self.calls += 1
        self.timeouts.append(timeout)
        return self.behaviour(self, timeout)


def test_runner_runs_probes_concurrently():
    barrier = threading.Barrier(4, timeout=3)

    def meet(probe, timeout):
        barrier.wait()  # raises BrokenBarrierError unless all four run at the same time
        return {'met': True}
    probes = [FakeProbe('p%d' % i, meet) for i in range(4)]
    results, _ = ProbeRunner(probes, timeout=10).run()
    assert [r['ok'] for r in results] == [True] * 4, results
    assert [r['name'] for r in results] == ['p0', 'p1', 'p2', 'p3']


def test_runner_retries_until_success_with_delay():
    def flaky(probe, timeout):
        if probe.calls < 3:
            raise ProbeFailure('not yet (%d)' % probe.calls, {'call': probe.calls})
        return {'call': probe.calls}
    probe = FakeProbe('flaky', flaky, retries=4, delay=0.2)
    start = time.monotonic()
    results, _ = ProbeRunner([probe], timeout=10).run()
    elapsed = time.monotonic() - start
    assert results[0]['ok'] is True and results[0]['attempts'] == 3 and results[0]['detail'] == {'call': 3}
    assert results[0]['error'] is None
    assert elapsed >= 0.4  # two delays of 0.2 s between three attempts


def test_runner_reports_last_error_after_all_retries():
    def broken(probe, timeout):
        raise ProbeFailure('down %d' % probe.calls)
    results, _ = ProbeRunner([FakeProbe('b', broken, retries=2)], timeout=10).run()
    assert results[0] == {'name': 'b', 'type': 'fake', 'ok': False, 'attempts': 3, 'latency_ms': results[0]['latency_ms'],
                          'detail': {}, 'error': 'down 3'}
    assert isinstance(results[0]['latency_ms'], float)


def test_runner_overall_timeout_reports_hanging_probe_and_returns_in_time():
    release = threading.Event()

    def hang(probe, timeout):
        release.wait(30)
        return {}
    fast = FakeProbe('fast', lambda probe, timeout: {'fine': True})
    slow = FakeProbe('slow', hang, retries=3)
    start = time.monotonic()
    try:
        results, duration = ProbeRunner([fast, slow], timeout=0.5).run()
    finally:
        release.set()
    assert time.monotonic() - start < 2.0
    assert results[0]['ok'] is True
    assert results[1]['ok'] is False and results[1]['attempts'] == 1
    assert results[1]['error'] == 'overall timeout of 0.5s reached during attempt 1'
    assert duration < 2000


def test_runner_bounds_each_attempt_by_the_time_left():
    probe = FakeProbe('p', lambda probe, timeout: {}, timeout=100)
    ProbeRunner([probe], timeout=2).run()
    assert 0 < probe.timeouts[0] <= 2


def test_runner_stops_retrying_at_the_deadline():
    def broken(probe, timeout):
        raise ProbeFailure('down')
    probe = FakeProbe('p', broken, retries=100, delay=0.2)
    start = time.monotonic()
    results, _ = ProbeRunner([probe], timeout=0.7).run()
    assert time.monotonic() - start < 0.7
    assert results[0]['ok'] is False and 3 <= results[0]['attempts'] <= 4
    assert results[0]['error'] == 'down'


def test_runner_survives_unexpected_exceptions():
    def bug(probe, timeout):
        raise KeyError('oops')
    results, _ = ProbeRunner([FakeProbe('p', bug)], timeout=5).run()
    assert results[0]['ok'] is False and results[0]['error'] == "KeyError: 'oops'"


def test_summary_names_every_failed_probe():
    results = [{'name': 'a', 'type': 'http', 'ok': False, 'error': 'HTTP 503'},
               {'name': 'b', 'type': 'tcp', 'ok': True, 'error': None},
               {'name': 'c', 'type': 'kafka', 'ok': False, 'error': 'topic(s) not found: x'}]
    assert summarize(results) == '2 of 3 probe(s) failed: a (http): HTTP 503; c (kafka): topic(s) not found: x'
    assert summarize(results[1:2]) is None


# ---------------------------------------------------------------------------------------- http
class _Web(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    flaky = {}

    def log_message(self, *args):
        pass

    def _send(self, status, payload, ctype='application/json'):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(data)

    def do_GET(self):
        if self.path == '/ok':
            return self._send(200, {'status': 'ok', 'data': {'items': [{'name': 'a'}, {'name': 'b'}]}, 'n': 3})
        if self.path == '/text':
            return self._send(200, b'hello world', 'text/plain')
        if self.path == '/fail':
            return self._send(503, {'error': 'maintenance'})
        if self.path == '/auth':
            expected = 'Basic ' + base64.b64encode(b'probe:pw').decode()
            return self._send(200 if self.headers.get('Authorization') == expected else 401, {})
        if self.path == '/headers':
            return self._send(200, dict(self.headers))
        return self._send(404, {})

    do_HEAD = do_GET

    def do_POST(self):
        length = int(self.headers.get('Content-Length') or 0)
        return self._send(201, {'got': json.loads(self.rfile.read(length) or b'null')})


@pytest.fixture(scope='module')
def web():
    server = ThreadingHTTPServer(('127.0.0.1', 0), _Web)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_http_ok_with_json_path_into_lists(web):
    detail = one(name='h', type='http', url=web + '/ok', json_path='data.items.1.name', json_equals='b').check(5)
    assert detail == {'url': web + '/ok', 'method': 'GET', 'status': 200, 'json_value': 'b'}


@pytest.mark.parametrize('probe,fragment', [
    ({'url': '/fail'}, 'HTTP 503 from {web}/fail, expected 200'),
    ({'url': '/fail', 'status': [200, 204]}, 'expected 200 or 204'),
    ({'url': '/text', 'body_contains': 'bye'}, "response body does not contain 'bye'"),
    ({'url': '/text', 'json_path': 'x'}, 'response is not JSON'),
    ({'url': '/ok', 'json_path': 'data.items.5.name'}, "json_path 'data.items.5.name' not found: 'data.items' has 2 element(s), no index 5"),
    ({'url': '/ok', 'json_path': 'data.nope'}, "'data' has no key 'nope' (keys: items)"),
    ({'url': '/ok', 'json_path': 'status', 'json_equals': 'green'}, 'json_path \'status\' is "ok", expected "green"'),
    ({'url': '/ok', 'json_path': 'n', 'json_equals': '3'}, 'json_path \'n\' is 3, expected "3"'),
    ({'url': '/auth', 'user': 'probe', 'password': 'bad'}, 'HTTP 401'),
])
def test_http_failures_explain_themselves(web, probe, fragment):
    probe = dict(probe, name='h', type='http', url=web + probe['url'])
    with pytest.raises(ProbeFailure) as err:
        one(**probe).check(5)
    assert fragment.format(web=web) in str(err.value)
    assert 'bad' not in json.dumps(err.value.detail)


def test_http_auth_headers_method_and_body(web):
    assert one(name='h', type='http', url=web + '/auth', user='probe', password='pw').check(5)['status'] == 200
    detail = one(name='h', type='http', url=web + '/headers', headers={'X-Probe': 'yes'}, json_path='X-Probe',
                 json_equals='yes').check(5)
    assert detail['json_value'] == 'yes'
    detail = one(name='h', type='http', url=web + '/', method='post', body={'a': 1}, status=201,
                 json_path='got.a', json_equals=1).check(5)
    assert detail['method'] == 'POST' and detail['json_value'] == 1
    assert one(name='h', type='http', url=web + '/ok', method='HEAD').check(5)['status'] == 200


def test_http_credentials_in_url_are_masked(web):
    port = web.rsplit(':', 1)[1]
    probe = one(name='h', type='http', url='http://probe:pw@127.0.0.1:%s/fail' % port)
    with pytest.raises(ProbeFailure) as err:
        probe.check(5)
    assert 'pw' not in str(err.value) and '********@127.0.0.1' in str(err.value)
    assert one(name='h', type='http', url='http://probe:pw@127.0.0.1:%s/auth' % port).check(5)['status'] == 200


def test_http_connection_refused():
    with pytest.raises(ProbeFailure) as err:
        one(name='h', type='http', url='http://127.0.0.1:%d/' % free_port()).check(2)
    assert 'Connection refused' in str(err.value)


@pytest.fixture(scope='module')
def https_service():
    pki = make_test_pki(tempfile.mkdtemp())
    double = OpenSearchDouble(tls=pki, require_client_cert=True).start()
    yield double, pki
    double.stop()


def test_http_over_tls(https_service):
    double, pki = https_service
    url = 'https://127.0.0.1:%d/' % double.port
    client = {'client_cert': pki['client_cert'], 'client_key': pki['client_key']}
    detail = one(name='h', type='http', url=url, validate_certs=False, json_path='version.distribution',
                 json_equals='opensearch', **client).check(5)
    assert detail['status'] == 200
    with pytest.raises(ProbeFailure) as err:  # the certificate names search.test, not 127.0.0.1
        one(name='h', type='http', url=url, ca_path=pki['ca'], **client).check(5)
    assert 'IP address mismatch' in str(err.value)
    with pytest.raises(ProbeFailure) as err:  # not signed by a CA in the system store
        one(name='h', type='http', url=url, **client).check(5)
    assert 'CERTIFICATE_VERIFY_FAILED' in str(err.value)
    with pytest.raises(ProbeFailure):  # the server wants a client certificate
        one(name='h', type='http', url=url, validate_certs=False).check(5)


def test_opensearch_probe_over_tls(https_service):
    double, pki = https_service
    detail = one(name='o', type='opensearch', url='https://127.0.0.1:%d' % double.port, validate_certs=False,
                 client_cert=pki['client_cert'], client_key=pki['client_key']).check(5)
    assert detail['status'] == 'green'


def test_json_lookup_root_and_scalars():
    assert json_lookup({'a': 1}, '') == {'a': 1}
    with pytest.raises(KeyError) as err:
        json_lookup({'a': 1}, 'a.b')
    assert "'a' is 1, not an object or list" in err.value.args[0]


# ----------------------------------------------------------------------------------------- tcp
def test_tcp_open_and_closed():
    with socket.socket() as listener:
        listener.bind(('127.0.0.1', 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        assert one(name='t', type='tcp', host='127.0.0.1', port=port).check(2)['peer'] == '127.0.0.1:%d' % port
    with pytest.raises(ProbeFailure) as err:
        one(name='t', type='tcp', host='127.0.0.1', port=port).check(2)
    assert 'cannot connect to 127.0.0.1:%d' % port in str(err.value)


# ------------------------------------------------------------------------------------ postgres
class FakePgError(Exception):
    pass


class FakeCursor:
    def __init__(self, db):
        self.db = db
        self.row = None

    def execute(self, sql, args=None):
        self.db.statements.append((sql, args))
        if sql == 'SELECT 1':
            self.row = (1,)
        elif sql == 'SHOW server_version':
            self.row = ('18.1',)
        elif 'FROM pg_extension' in sql:
            self.row = ('0.8.1',) if args[0] in self.db.installed else None
        elif 'pg_available_extensions' in sql:
            self.row = ('0.8.1',) if args[0] == 'vector' else None

    def fetchone(self):
        return self.row


class FakePg:
    Error = FakePgError

    def __init__(self, installed=(), fail=None):
        self.installed = installed
        self.fail = fail
        self.statements = []
        self.kwargs = None
        self.session = None
        self.closed = False

    def connect(self, **kwargs):
        self.kwargs = kwargs
        if self.fail:
            raise FakePgError(self.fail)
        return self

    def set_session(self, **kwargs):
        self.session = kwargs

    def cursor(self):
        return FakeCursor(self)

    def close(self):
        self.closed = True


def test_optional_libraries_are_imported_lazily_and_missing_ones_are_none(monkeypatch):
    assert P.optional_library('json') is json
    monkeypatch.delitem(P._LIBRARIES, 'aistack_no_such_library', raising=False)
    assert P.optional_library('aistack_no_such_library') is None
    assert P._LIBRARIES['aistack_no_such_library'] is False


def test_postgres_ok_with_extension(monkeypatch):
    fake = FakePg(installed=('vector',))
    monkeypatch.setitem(P._LIBRARIES, 'psycopg2', fake)
    detail = one(name='db', type='postgres', host='db1', password='pw', db='rag', extension='vector').check(3)
    assert detail == {'database': 'db1:5432/rag', 'user': 'postgres', 'server_version': '18.1', 'extension_version': '0.8.1'}
    assert fake.session == {'readonly': True, 'autocommit': True} and fake.closed
    assert fake.kwargs['connect_timeout'] == 3 and fake.kwargs['sslmode'] == 'prefer'


def test_postgres_missing_extension_says_how_to_fix(monkeypatch):
    monkeypatch.setitem(P._LIBRARIES, 'psycopg2', FakePg())
    with pytest.raises(ProbeFailure) as err:
        one(name='db', type='postgres', extension='vector').check(3)
    assert str(err.value) == "extension 'vector' is not installed in database 'postgres' (available (version 0.8.1): " \
                             "CREATE EXTENSION vector)"


def test_postgres_connection_error_is_one_line(monkeypatch):
    monkeypatch.setitem(P._LIBRARIES, 'psycopg2',
                        FakePg(fail='connection to server at "db1" failed: Connection refused\n\tIs it up?'))
    with pytest.raises(ProbeFailure) as err:
        one(name='db', type='postgres', host='db1', password='topsecret').check(3)
    assert str(err.value) == 'cannot connect to PostgreSQL db1:5432/postgres as postgres: connection to server at "db1" ' \
                             'failed: Connection refused'
    assert 'topsecret' not in json.dumps(err.value.detail)


def test_postgres_without_psycopg2_fails_only_that_probe(monkeypatch):
    monkeypatch.setitem(P._LIBRARIES, 'psycopg2', False)
    results, _ = ProbeRunner(build_probes([{'name': 'db', 'type': 'postgres'},
                                           {'name': 'ok', 'type': 'tcp', 'host': '127.0.0.1', 'port': 9}]), 5).run()
    assert 'Failed to import the required Python library (psycopg2' in results[0]['error']
    assert results[1]['error'] is not None and 'psycopg2' not in results[1]['error']


# -------------------------------------------------------------------------------------- milvus
class FakeLoadState:
    def __init__(self, name):
        self.name = name


def fake_milvus(collections, fail=None):
    seen = {}

    class Client:
        def __init__(self, **kwargs):
            seen['kwargs'] = kwargs
            if fail:
                raise RuntimeError(fail)

        def get_server_version(self, timeout=None):
            return 'v2.3.5-lite'

        def has_collection(self, name, timeout=None):
            return name in collections

        def get_load_state(self, name, timeout=None):
            return {'state': FakeLoadState(collections[name])}

        def close(self):
            seen['closed'] = True
    return Client, seen


@pytest.mark.parametrize('collection,ok,fragment', [
    (None, True, None),
    ('docs', True, None),
    ('cold', False, "collection 'cold' is not loaded (load state NotLoad)"),
    ('nope', False, "collection 'nope' does not exist"),
])
def test_milvus(monkeypatch, collection, ok, fragment):
    client, seen = fake_milvus({'docs': 'Loaded', 'cold': 'NotLoad'})
    monkeypatch.setitem(P._LIBRARIES, 'pymilvus', types.SimpleNamespace(MilvusClient=client))
    probe = one(name='m', type='milvus', uri='http://m:19530', token='root:Milvus', collection=collection)
    if ok:
        assert probe.check(3)['server_version'] == 'v2.3.5-lite'
    else:
        with pytest.raises(ProbeFailure) as err:
            probe.check(3)
        assert str(err.value) == fragment
        assert err.value.detail['server_version'] == 'v2.3.5-lite'
    assert seen['closed'] and seen['kwargs']['token'] == 'root:Milvus'


def test_milvus_connection_error_and_missing_library(monkeypatch):
    client, _ = fake_milvus({}, fail='<MilvusException: (code=2, message=Fail connecting to server on m:19530)>')
    monkeypatch.setitem(P._LIBRARIES, 'pymilvus', types.SimpleNamespace(MilvusClient=client))
    with pytest.raises(ProbeFailure) as err:
        one(name='m', type='milvus', uri='http://m:19530').check(3)
    assert 'Milvus at http://m:19530: <MilvusException: (code=2, message=Fail connecting' in str(err.value)
    monkeypatch.setitem(P._LIBRARIES, 'pymilvus', False)
    with pytest.raises(ProbeFailure) as err:
        one(name='m', type='milvus', uri='http://m:19530').check(3)
    assert 'Failed to import the required Python library (pymilvus)' in str(err.value)


# ---------------------------------------------------------------------------------- opensearch
@pytest.mark.parametrize('health,min_status,ok', [
    ('green', 'green', True), ('yellow', 'yellow', True), ('yellow', 'green', False), ('red', 'yellow', False)])
def test_opensearch_health(health, min_status, ok):
    double = OpenSearchDouble(health=health).start()
    try:
        probe = one(name='o', type='opensearch', hosts=[double.url], min_status=min_status)
        if ok:
            assert probe.check(3)['status'] == health
        else:
            with pytest.raises(ProbeFailure) as err:
                probe.check(3)
            assert "cluster 'aistack-double' is %s, expected %s" % (health, min_status) in str(err.value)
            assert err.value.detail['status'] == health
    finally:
        double.stop()


def test_opensearch_auth_and_unreachable():
    double = OpenSearchDouble(users={'mon': 'itor'}).start()
    try:
        assert one(name='o', type='opensearch', url=double.url, user='mon', password='itor').check(3)['status'] == 'green'
        with pytest.raises(ProbeFailure) as err:
            one(name='o', type='opensearch', url=double.url, user='mon', password='nope').check(3)
        assert 'authentication failed (HTTP 401)' in str(err.value)
    finally:
        double.stop()
    with pytest.raises(ProbeFailure) as err:
        one(name='o', type='opensearch', url='http://127.0.0.1:%d' % free_port()).check(2)
    assert 'cannot reach OpenSearch' in str(err.value)


def test_opensearch_without_opensearch_py_fails_only_that_probe(monkeypatch):
    monkeypatch.setattr(P, 'HAS_OPENSEARCHPY', False)
    with pytest.raises(ProbeFailure) as err:
        one(name='o', type='opensearch', url='http://127.0.0.1:9200').check(2)
    assert 'Failed to import the required Python library (opensearch-py)' in str(err.value)


# --------------------------------------------------------------------------------------- kafka
# The kafka probe runs against the real Kafka 4.3 broker of the kafka_server fixture (tests/lib/kafka_server.py).
@pytest.fixture(scope='module')
def kafka_topics(kafka_server):
    """Topics probe-ingest (3 partitions) and probe-events (1), made with an independent kafka-python client."""
    from lib.kafka_server import kafka_admin
    admin = kafka_admin(kafka_server)
    try:
        existing = admin.list_topics()
        wanted = {'probe-ingest': {'num_partitions': 3, 'replication_factor': 1},
                  'probe-events': {'num_partitions': 1, 'replication_factor': 1}}
        new = dict((k, v) for k, v in wanted.items() if k not in existing)
        if new:
            admin.create_topics(new, wait_for_metadata=True)
        yield admin
    finally:
        admin.close()


def kafka_probe(server, listener='plaintext', **extra):
    probe = dict(name='k', type='kafka', bootstrap_servers=[server[listener]])
    if listener == 'ssl':
        probe.update(tls=True, ca_path=server['ca_file'])
    if listener == 'sasl_ssl':
        probe.update(security_protocol='SASL_SSL', user=server['sasl_username'], password=server['sasl_password'],
                     ca_path=server['ca_file'])
    probe.update(extra)
    return one(**probe)


@pytest.mark.parametrize('listener,extra', [
    ('plaintext', {}),
    ('ssl', {}),
    ('sasl_ssl', {}),
    ('sasl_ssl', {'sasl_mechanism': 'SCRAM-SHA-256'}),
    ('sasl_ssl', {'sasl_mechanism': 'PLAIN'}),
])
def test_kafka_reads_brokers_and_topics_on_every_listener(kafka_server, kafka_topics, listener, extra):
    detail = kafka_probe(kafka_server, listener, topics=['probe-ingest', 'probe-events'], **extra).check(10)
    assert detail['topics'] == {'probe-ingest': 3, 'probe-events': 1}
    assert detail['brokers'] == ['1@%s' % kafka_server[listener]]
    assert detail['cluster_id'] == kafka_server['cluster_id']
    assert detail['security_protocol'] == {'plaintext': 'PLAINTEXT', 'ssl': 'SSL', 'sasl_ssl': 'SASL_SSL'}[listener]


def test_kafka_never_lets_the_broker_create_topics(kafka_server, kafka_topics):
    # the fixture's broker has auto.create.topics.enable=true: a metadata request that allowed it would create it
    with pytest.raises(ProbeFailure) as err:
        kafka_probe(kafka_server, topics=['probe-ingest', 'probe-missing']).check(10)
    assert str(err.value) == 'topic(s) not found: probe-missing'
    assert err.value.detail['topics'] == {'probe-ingest': 3}
    assert 'probe-missing' not in kafka_topics.list_topics()


def test_kafka_wrong_password_fails_at_once_with_the_reason(kafka_server, kafka_topics):
    start = time.monotonic()
    with pytest.raises(ProbeFailure) as err:
        kafka_probe(kafka_server, 'sasl_ssl', password='wrong-password').check(30)
    # kafka-python reports the broker's SaslAuthenticationFailedError, or (when the broker closed the TLS connection
    # before that response was read) our diagnosis of the connection lost during SaslAuthenticate
    assert 'authentication failed' in str(err.value).lower() and 'SCRAM-SHA-512' in str(err.value)
    assert 'wrong-password' not in str(err.value) + json.dumps(err.value.detail)
    assert time.monotonic() - start < 25  # stopped on the authentication failure, not at the probe's timeout


def test_kafka_untrusted_certificate_and_plaintext_on_a_tls_listener(kafka_server):
    with pytest.raises(ProbeFailure) as err:
        kafka_probe(kafka_server, 'ssl', ca_path=None).check(5)
    assert 'CERTIFICATE_VERIFY_FAILED' in str(err.value)
    assert kafka_probe(kafka_server, 'ssl', ca_path=None, validate_certs=False).check(5)['brokers']
    with pytest.raises(ProbeFailure) as err:
        kafka_probe(kafka_server, 'plaintext', bootstrap_servers=[kafka_server['ssl']]).check(3)
    assert str(err.value).startswith('cannot connect to Kafka at %s (PLAINTEXT): ' % kafka_server['ssl'])


def test_kafka_unreachable_server_is_reported():
    dead = '127.0.0.1:%d' % free_port()
    with pytest.raises(ProbeFailure) as err:
        one(name='k', type='kafka', bootstrap_servers=[dead]).check(2)
    assert str(err.value).startswith('cannot connect to Kafka at %s (PLAINTEXT): ' % dead)
    assert 'ECONNREFUSED' in str(err.value)
    assert err.value.detail == {'bootstrap_servers': [dead], 'security_protocol': 'PLAINTEXT'}


def test_kafka_not_a_broker():
    with socket.socket() as listener:
        listener.bind(('127.0.0.1', 0))
        listener.listen(5)
        port = listener.getsockname()[1]
        stop = threading.Event()

        def answer_garbage():
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                conn.recv(1024)
                conn.sendall(b'HTTP/1.1 400 Bad Request\r\n\r\n')
                conn.close()
        thread = threading.Thread(target=answer_garbage, daemon=True)
        thread.start()
        try:
            with pytest.raises(ProbeFailure) as err:
                one(name='k', type='kafka', bootstrap_servers=['127.0.0.1:%d' % port]).check(2)
        finally:
            stop.set()
            thread.join(3)
    assert str(err.value).startswith('cannot connect to Kafka at 127.0.0.1:%d (PLAINTEXT): ' % port)


@pytest.mark.parametrize('probe,expected', [
    ({'tls': True}, 'SSL'),
    ({'tls': True, 'user': 'u', 'password': 'p'}, 'SASL_SSL'),
    ({'user': 'u', 'password': 'p'}, 'SASL_PLAINTEXT'),
    ({}, 'PLAINTEXT'),
    ({'security_protocol': 'SASL_SSL', 'user': 'u', 'password': 'p'}, 'SASL_SSL'),
])
def test_kafka_security_protocol_from_tls_and_user(probe, expected):
    assert one(name='k', type='kafka', bootstrap_servers=['k:9092'], **probe).protocol() == expected


@pytest.mark.parametrize('probe,message', [
    ({'security_protocol': 'SASL_SSL'}, 'user/password: security_protocol SASL_SSL needs both (the SASL user)'),
    ({'security_protocol': 'TLS'}, "security_protocol: 'TLS' is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
    ({'security_protocol': 'PLAINTEXT', 'tls': True}, 'tls: true contradicts security_protocol PLAINTEXT'),
    ({'security_protocol': 'SSL', 'password': 'p'}, 'user/password: only used with security_protocol SASL_SSL or '
                                                    'SASL_PLAINTEXT, not SSL'),
    ({'user': 'u', 'password': 'p', 'sasl_mechanism': 'GSSAPI'}, "sasl_mechanism: 'GSSAPI' is not one of PLAIN, "
                                                                 "SCRAM-SHA-256, SCRAM-SHA-512"),
    ({'client_key': '/k.pem'}, 'client_key: needs client_cert'),
])
def test_kafka_invalid_security_options(probe, message):
    msg = error_of([dict(name='k', type='kafka', bootstrap_servers=['k:9092'], **probe)])
    assert "probe 'k' (type kafka): option " + message in msg


def test_split_host_port():
    assert P.split_host_port('[::1]:9092') == ('::1', 9092)
    assert P.split_host_port('kafka1:9092') == ('kafka1', 9092)
    with pytest.raises(ValueError):
        P.split_host_port('kafka1')


# --------------------------------------------------------------------------------------- redis
class _Resp(socketserver.BaseRequestHandler):
    password = 'pw'

    def handle(self):
        buf = b''
        authed = self.password is None
        while True:
            data = self.request.recv(4096)
            if not data:
                return
            buf += data
            while buf.startswith(b'*') and buf.count(b'\r\n') >= 1 + 2 * int(buf[1:buf.index(b'\r\n')]):
                count = int(buf[1:buf.index(b'\r\n')])
                lines = buf.split(b'\r\n')
                args = [lines[2 + 2 * i].decode() for i in range(count)]
                buf = b'\r\n'.join(lines[1 + 2 * count:])
                if args[0] == 'AUTH':
                    if args[-1] == self.password and (len(args) == 2 or args[1] == 'default'):
                        authed = True
                        self.request.sendall(b'+OK\r\n')
                    else:
                        self.request.sendall(b'-WRONGPASS invalid username-password pair or user is disabled.\r\n')
                elif args[0] == 'PING':
                    self.request.sendall(b'+PONG\r\n' if authed else b'-NOAUTH Authentication required.\r\n')


@pytest.fixture(scope='module')
def resp_server():
    server = socketserver.ThreadingTCPServer(('127.0.0.1', 0), _Resp)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_redis_ping(resp_server):
    assert one(name='r', type='redis', host='127.0.0.1', port=resp_server, password='pw').check(3) == {
        'address': '127.0.0.1:%d' % resp_server, 'reply': 'PONG'}
    assert one(name='r', type='redis', host='127.0.0.1', port=resp_server, user='default', password='pw').check(3)


@pytest.mark.parametrize('probe,fragment', [
    ({}, 'answered PING with an error: NOAUTH Authentication required. (set password)'),
    ({'password': 'guess'}, 'refused AUTH: WRONGPASS'),
    ({'user': 'bob', 'password': 'pw'}, 'refused AUTH as bob: WRONGPASS'),
])
def test_redis_failures(resp_server, probe, fragment):
    with pytest.raises(ProbeFailure) as err:
        one(name='r', type='redis', host='127.0.0.1', port=resp_server, **probe).check(3)
    assert fragment in str(err.value)
    assert 'guess' not in str(err.value)


def test_resp_encoding():
    assert P.resp_command('AUTH', 'pw') == b'*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n'


# ---------------------------------------------------------------------------- docker_container
def inspect(status='running', health=None, log=None, exit_code=0):
    state = {'Status': status, 'ExitCode': exit_code}
    if health:
        state['Health'] = {'Status': health, 'FailingStreak': 3 if health == 'unhealthy' else 0, 'Log': log or []}
    return {'State': state, 'Config': {'Image': 'embedder:1'}, 'RestartCount': 2}


CONTAINERS = {
    'ok': inspect(health='healthy'),
    'plain': inspect(),
    'sick': inspect(health='unhealthy', log=[{'Output': 'curl: (7) Failed to connect'}]),
    'starting': inspect(health='starting'),
    'dead': inspect(status='exited', exit_code=137),
}


def fake_docker_sdk(containers, calls):
    class NotFound(Exception):
        pass

    class DockerException(Exception):
        pass

    class Api:
        def inspect_container(self, name):
            calls.append(name)
            if name not in containers:
                raise NotFound('404 Client Error: Not Found ("No such container: %s")' % name)
            return containers[name]

    class Client:
        def __init__(self, **kwargs):
            calls.append(kwargs)
            self.api = Api()

        def close(self):
            calls.append('closed')
    module = types.SimpleNamespace(
        DockerClient=Client, from_env=lambda **kwargs: Client(**kwargs),
        errors=types.SimpleNamespace(NotFound=NotFound, DockerException=DockerException))
    return module


EXPECTATIONS = [
    ('ok', 'auto', None),
    ('plain', 'auto', None),
    ('plain', 'running', None),
    ('ok', 'running', None),
    ('plain', 'healthy', "container 'plain' has no healthcheck; use expect: running"),
    ('sick', 'auto', "container 'sick' is unhealthy, expected healthy (last check: curl: (7) Failed to connect)"),
    ('starting', 'healthy', "container 'starting' is starting, expected healthy"),
    ('dead', 'auto', "container 'dead' is exited (exit code 137), expected running"),
    ('gone', 'auto', "no such container 'gone'"),
]


@pytest.mark.parametrize('name,expect,error', EXPECTATIONS)
def test_docker_container_with_sdk(monkeypatch, name, expect, error):
    calls = []
    monkeypatch.setitem(P._LIBRARIES, 'docker', fake_docker_sdk(CONTAINERS, calls))
    probe = one(name='c', type='docker_container', container=name, expect=expect)
    if error is None:
        detail = probe.check(3)
        assert detail['via'] == 'docker SDK' and detail['image'] == 'embedder:1' and detail['restart_count'] == 2
    else:
        with pytest.raises(ProbeFailure) as err:
            probe.check(3)
        assert str(err.value) == error
    assert calls[0] == {'timeout': 3} and 'closed' in calls


class _DockerApi(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.split('/')[2]
        if self.path != '/containers/%s/json' % name or name not in CONTAINERS:
            status, body = 404, {'message': 'No such container: %s' % name}
        else:
            status, body = 200, CONTAINERS[name]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = socketserver.UnixStreamServer.get_request(self)
        return request, ('local', 0)


@pytest.fixture(scope='module')
def docker_socket():
    path = os.path.join(tempfile.mkdtemp(), 'docker.sock')
    server = _UnixHTTPServer(path, _DockerApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()
    os.unlink(path)


@pytest.mark.parametrize('name,expect,error', EXPECTATIONS)
def test_docker_container_via_engine_socket(monkeypatch, docker_socket, name, expect, error):
    monkeypatch.setitem(P._LIBRARIES, 'docker', False)
    probe = one(name='c', type='docker_container', container=name, expect=expect, docker_host='unix://' + docker_socket)
    if error is None:
        assert probe.check(3)['via'] == 'docker socket unix://' + docker_socket
    else:
        with pytest.raises(ProbeFailure) as err:
            probe.check(3)
        assert str(err.value) == error


def test_docker_socket_missing(monkeypatch):
    monkeypatch.setitem(P._LIBRARIES, 'docker', False)
    with pytest.raises(ProbeFailure) as err:
        one(name='c', type='docker_container', container='x', docker_host='unix:///nonexistent/docker.sock').check(2)
    assert str(err.value).startswith('docker engine at unix:///nonexistent/docker.sock: ')

"""Integration tests of aistack.infra.service_health through real ansible-playbook.

Real services: an HTTP server with JSON endpoints and a TCP listener (both in this process), a real
redis-server (Debian package; skipped with a reason when absent), a real PostgreSQL 18 + pgvector
(tests/lib/pg_server.py) and a real Milvus 2.3 (tests/lib/milvus_server.py), each skipped when its
fixture module is missing. Kafka is real too: a Kafka 4.3 broker from Maven Central jars
(tests/lib/kafka_server.py) with PLAINTEXT and SASL_SSL listeners. OpenSearch is real: a single node with the
k-NN plugin from Maven Central's artifacts (tests/lib/opensearch_server.py); it has no security plugin, so the
opensearch probe's TLS and authentication are unit-tested against tests/lib/opensearch_double.py.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lib.ansible_run import run_module
from lib.kafka_server import kafka_admin

from lib.pg_server import pg_connect  # the pg_server and milvus_server fixtures come from tests/conftest.py

REDIS_PASSWORD = 'redis-test-pass-7f3a'
SECRET_MARKERS = (REDIS_PASSWORD, 'probe-acl-pass')


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------- http + tcp
class _Service(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    counters = {}
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path, _, query = self.path.partition('?')
        if path == '/healthz':
            return self._send(200, {'status': 'ok', 'version': '1.4.2',
                                    'checks': {'items': [{'name': 'db', 'ok': True}, {'name': 'cache', 'ok': False}]}})
        if path == '/down':
            return self._send(503, {'status': 'maintenance'})
        if path == '/slow':
            time.sleep(float(query or 1))
            return self._send(200, {'slept': float(query or 1)})
        if path.startswith('/flaky/'):
            # fails the first N calls for a key: /flaky/<key>/<N>
            _, _, key, failures = path.split('/')
            with self.lock:
                count = self.counters[key] = self.counters.get(key, 0) + 1
            if count <= int(failures):
                return self._send(503, {'attempt': count})
            return self._send(200, {'attempt': count})
        return self._send(404, {'error': 'not found'})


@pytest.fixture(scope='module')
def web():
    server = ThreadingHTTPServer(('127.0.0.1', 0), _Service)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(scope='module')
def tcp_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


# ------------------------------------------------------------------------------------ redis
def _redis_cmd(port, *args, password=None):
    from ansible_collections.aistack.infra.plugins.module_utils._probes import resp_command
    with socket.create_connection(('127.0.0.1', port), 5) as sock:
        if password:
            sock.sendall(resp_command('AUTH', password))
            sock.recv(1024)
        sock.sendall(resp_command(*args))
        return sock.recv(4096)


@pytest.fixture(scope='module')
def redis_server():
    binary = shutil.which('redis-server') or ('/usr/bin/redis-server' if os.path.exists('/usr/bin/redis-server') else None)
    if binary is None:
        pytest.skip('redis-server is not installed: install the Debian package redis-server '
                    '(it belongs in tools/system-deps.sh)')
    port = free_port()
    workdir = tempfile.mkdtemp(prefix='aistack-redis-')
    proc = subprocess.Popen([binary, '--bind', '127.0.0.1', '--port', str(port), '--dir', workdir, '--save', '',
                             '--appendonly', 'no', '--daemonize', 'no', '--requirepass', REDIS_PASSWORD,
                             '--logfile', os.path.join(workdir, 'redis.log')],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while True:
            try:
                if _redis_cmd(port, 'PING', password=REDIS_PASSWORD).startswith(b'+PONG'):
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                with open(os.path.join(workdir, 'redis.log')) as log:
                    pytest.fail('redis-server did not start:\n%s' % log.read()[-2000:])
            time.sleep(0.1)
        # an ACL user that may only PING, to test AUTH <user> <password>
        assert _redis_cmd(port, 'ACL', 'SETUSER', 'probe', 'on', '>probe-acl-pass', '+ping',
                          password=REDIS_PASSWORD).startswith(b'+OK')
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------------- opensearch + kafka
@pytest.fixture()
def opensearch(opensearch_server):
    """The real node, green: no index of its own has an unassigned replica (checked, not assumed)."""
    opensearchpy = pytest.importorskip('opensearchpy')
    client = opensearchpy.OpenSearch(hosts=opensearch_server['hosts'], timeout=60)
    health = client.cluster.health(wait_for_status='green')
    assert health['status'] == 'green', health
    return opensearch_server


@pytest.fixture()
def opensearch_yellow(opensearch_server):
    """The real node made yellow for one test: an index with a replica that a single node cannot assign."""
    opensearchpy = pytest.importorskip('opensearchpy')
    client = opensearchpy.OpenSearch(hosts=opensearch_server['hosts'], timeout=60)
    client.indices.create(index='health-yellow', body={'settings': {'number_of_shards': 1, 'number_of_replicas': 1}})
    try:
        health = client.cluster.health(wait_for_status='yellow')
        assert health['status'] == 'yellow' and health['unassigned_shards'] == 1, health
        yield opensearch_server
    finally:
        client.indices.delete(index='health-yellow')


@pytest.fixture(scope='module')
def kafka(kafka_server):
    """The real broker with topics ingest (3 partitions) and embeddings (1), made by an independent client."""
    admin = kafka_admin(kafka_server)
    try:
        wanted = {'ingest': {'num_partitions': 3, 'replication_factor': 1},
                  'embeddings': {'num_partitions': 1, 'replication_factor': 1}}
        existing = admin.list_topics()
        new = dict((k, v) for k, v in wanted.items() if k not in existing)
        if new:
            admin.create_topics(new, wait_for_metadata=True)
        yield dict(kafka_server, admin=admin)
    finally:
        admin.close()


# ------------------------------------------------------------------------------- helpers
def by_name(result):
    return dict((p['name'], p) for p in result['probes'])


def assert_no_secrets(result):
    text = json.dumps(result)
    for marker in SECRET_MARKERS:
        assert marker not in text, marker


# ---------------------------------------------------------------------------------- tests
def test_all_healthy_through_ansible(web, tcp_port, redis_server, opensearch, kafka):
    result = run_module('service_health', {'timeout': 60, 'probes': [
        {'name': 'api', 'type': 'http', 'url': web + '/healthz', 'json_path': 'checks.items.0.name', 'json_equals': 'db',
         'body_contains': '"status": "ok"'},
        {'name': 'port', 'type': 'tcp', 'host': '127.0.0.1', 'port': tcp_port},
        {'name': 'cache', 'type': 'redis', 'host': '127.0.0.1', 'port': redis_server, 'password': REDIS_PASSWORD},
        {'name': 'cache-acl', 'type': 'redis', 'host': '127.0.0.1', 'port': redis_server, 'user': 'probe',
         'password': 'probe-acl-pass'},
        {'name': 'search', 'type': 'opensearch', 'hosts': opensearch['hosts'], 'min_status': 'green'},
        {'name': 'events', 'type': 'kafka', 'bootstrap_servers': [kafka['plaintext']], 'topics': ['ingest', 'embeddings']},
        {'name': 'events-tls', 'type': 'kafka', 'bootstrap_servers': [kafka['sasl_ssl']], 'security_protocol': 'SASL_SSL',
         'user': kafka['sasl_username'], 'password': kafka['sasl_password'], 'ca_path': kafka['ca_file'],
         'topics': ['ingest']},
    ]})
    assert result['failed'] is False, result.get('msg')
    assert result['changed'] is False and result['healthy'] is True
    probes = by_name(result)
    assert list(probes) == ['api', 'port', 'cache', 'cache-acl', 'search', 'events', 'events-tls']
    assert all(p['ok'] and p['attempts'] == 1 and p['latency_ms'] >= 0 for p in probes.values())
    assert probes['api']['detail']['json_value'] == 'db'
    assert probes['cache']['detail']['reply'] == 'PONG'
    assert probes['search']['detail']['status'] == 'green'
    assert probes['search']['detail']['cluster_name'] == opensearch['cluster_name']
    assert probes['search']['detail']['number_of_nodes'] == 1
    assert probes['events']['detail']['cluster_id'] == kafka['cluster_id']
    assert probes['events']['detail']['topics'] == {'ingest': 3, 'embeddings': 1}
    assert probes['events-tls']['detail']['brokers'] == ['1@' + kafka['sasl_ssl']]
    assert probes['events-tls']['detail']['security_protocol'] == 'SASL_SSL'
    assert probes['events-tls']['detail']['topics'] == {'ingest': 3}
    assert kafka['sasl_password'] not in json.dumps(result)
    assert result['invocation']['module_args']['probes'][2]['password'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    assert_no_secrets(result)


def test_check_mode_runs_the_probes(web):
    result = run_module('service_health', {'probes': [{'name': 'api', 'type': 'http', 'url': web + '/down'}]},
                        check=True)
    assert result['failed'] is True and result['changed'] is False
    assert 'api (http): HTTP 503' in result['msg']


def test_one_failing_probe_of_each_kind_explains_itself(web, redis_server, opensearch_yellow, kafka):
    closed = free_port()
    result = run_module('service_health', {'fail_on_error': False, 'timeout': 60, 'probes': [
        {'name': 'http-status', 'type': 'http', 'url': web + '/down'},
        {'name': 'http-json', 'type': 'http', 'url': web + '/healthz', 'json_path': 'checks.items.1.ok',
         'json_equals': True},
        {'name': 'tcp-closed', 'type': 'tcp', 'host': '127.0.0.1', 'port': closed},
        {'name': 'redis-noauth', 'type': 'redis', 'host': '127.0.0.1', 'port': redis_server},
        {'name': 'redis-wrongpass', 'type': 'redis', 'host': '127.0.0.1', 'port': redis_server, 'password': 'nope-x1'},
        {'name': 'search-yellow', 'type': 'opensearch', 'url': opensearch_yellow['hosts'][0], 'min_status': 'green'},
        {'name': 'kafka-topics', 'type': 'kafka', 'bootstrap_servers': [kafka['plaintext']],
         'topics': ['ingest', 'missing-topic']},
        {'name': 'kafka-down', 'type': 'kafka', 'bootstrap_servers': ['127.0.0.1:%d' % closed], 'timeout': 3},
        {'name': 'kafka-wrongpass', 'type': 'kafka', 'bootstrap_servers': [kafka['sasl_ssl']], 'tls': True,
         'user': kafka['sasl_username'], 'password': 'kafka-wrong-x2', 'ca_path': kafka['ca_file']},
        {'name': 'docker-missing', 'type': 'docker_container', 'container': 'web',
         'docker_host': 'unix:///nonexistent/docker.sock'},
    ]})
    assert result['failed'] is False and result['healthy'] is False and result['changed'] is False
    probes = by_name(result)
    assert not any(p['ok'] for p in probes.values())
    errors = dict((name, p['error']) for name, p in probes.items())
    assert errors['http-status'] == 'HTTP 503 from %s/down, expected 200' % web
    assert probes['http-status']['detail']['body_excerpt'] == '{"status": "maintenance"}'
    assert errors['http-json'] == "json_path 'checks.items.1.ok' is false, expected true"
    assert errors['tcp-closed'] == 'cannot connect to 127.0.0.1:%d: [Errno 111] Connection refused' % closed
    assert errors['redis-noauth'] == ('Redis at 127.0.0.1:%d answered PING with an error: NOAUTH Authentication '
                                      'required. (set password)' % redis_server)
    assert errors['redis-wrongpass'].startswith('Redis at 127.0.0.1:%d refused AUTH: WRONGPASS' % redis_server)
    assert errors['search-yellow'] == ("cluster '%s' is yellow, expected green (unassigned shards: 1)"
                                       % opensearch_yellow['cluster_name'])
    assert errors['kafka-topics'] == 'topic(s) not found: missing-topic'
    # the broker auto-creates topics, but the probe never lets it (checked with an independent client)
    assert 'missing-topic' not in kafka['admin'].list_topics()
    assert errors['kafka-down'].startswith('cannot connect to Kafka at 127.0.0.1:%d (PLAINTEXT): ' % closed)
    assert errors['kafka-wrongpass'].startswith('cannot connect to Kafka at %s (SASL_SSL): ' % kafka['sasl_ssl'])
    assert 'authentication failed' in errors['kafka-wrongpass'].lower()
    assert 'kafka-wrong-x2' not in json.dumps(result)
    assert errors['docker-missing'].startswith(('docker engine at unix:///nonexistent/docker.sock', 'docker ('))
    assert 'nope-x1' not in json.dumps(result)
    assert result['msg'].startswith('10 of 10 probe(s) failed: http-status (http): HTTP 503')


def test_failure_message_names_every_failed_probe(web, tcp_port):
    result = run_module('service_health', {'probes': [
        {'name': 'good', 'type': 'tcp', 'host': '127.0.0.1', 'port': tcp_port},
        {'name': 'bad-a', 'type': 'http', 'url': web + '/down'},
        {'name': 'bad-b', 'type': 'http', 'url': web + '/nothing-here'},
    ]})
    assert result['failed'] is True and result['healthy'] is False
    assert result['msg'] == ('2 of 3 probe(s) failed: bad-a (http): HTTP 503 from {0}/down, expected 200; '
                             'bad-b (http): HTTP 404 from {0}/nothing-here, expected 200'.format(web))


def test_probes_run_concurrently(web):
    start = time.monotonic()
    result = run_module('service_health', {'probes': [
        {'name': 'slow%d' % i, 'type': 'http', 'url': web + '/slow?1.5'} for i in range(4)]})
    assert result['failed'] is False
    assert all(p['latency_ms'] >= 1400 for p in result['probes'])
    assert result['duration_ms'] < 4 * 1500  # sequential would take 6 s
    assert time.monotonic() - start < 30


def test_retries_and_delay(web):
    result = run_module('service_health', {'retries': 4, 'delay': 0.3, 'probes': [
        {'name': 'flaky', 'type': 'http', 'url': web + '/flaky/retry-test/2', 'json_path': 'attempt', 'json_equals': 3},
        {'name': 'never', 'type': 'http', 'url': web + '/down', 'retries': 1, 'delay': 0},
    ], 'fail_on_error': False})
    probes = by_name(result)
    assert probes['flaky']['ok'] is True and probes['flaky']['attempts'] == 3
    assert probes['never']['ok'] is False and probes['never']['attempts'] == 2
    assert result['duration_ms'] >= 600


def test_overall_timeout(web):
    result = run_module('service_health', {'timeout': 1.5, 'probes': [
        {'name': 'stuck', 'type': 'http', 'url': web + '/slow?8', 'timeout': 30},
        {'name': 'quick', 'type': 'http', 'url': web + '/healthz'},
    ]})
    assert result['failed'] is True
    probes = by_name(result)
    assert probes['quick']['ok'] is True
    assert probes['stuck']['ok'] is False
    assert probes['stuck']['error'].startswith(('overall timeout of 1.5s reached during attempt 1',
                                                'GET %s/slow?8: no answer within' % web))
    assert result['duration_ms'] < 5000


def test_malformed_probes_fail_before_running(web):
    result = run_module('service_health', {'probes': [
        {'name': 'api', 'type': 'http', 'url': web + '/flaky/never-run/0', 'port': 80},
        {'name': 'db', 'type': 'postgres', 'ssl_mode': 'sometimes'},
        {'name': 'api', 'type': 'tcp', 'host': 'h'},
        {'name': 'mq', 'type': 'rabbitmq'},
    ]})
    assert result['failed'] is True and result['probes'] == []
    msg = result['msg']
    assert "probe 'api' (type http): option 'port' is not supported by http probes; allowed options: body, " in msg
    assert "probe 'db' (type postgres): option ssl_mode: 'sometimes' is not one of disable, allow, prefer" in msg
    assert "probe 'api': option 'name' is used by more than one probe" in msg
    assert "probe 'api' (type tcp): option 'port' is required" in msg
    assert "probe 'mq': option 'type' 'rabbitmq' is not supported; allowed types: docker_container, http" in msg
    assert 'never-run' not in _Service.counters  # nothing ran


# -------------------------------------------------------------------------------- postgres
def test_postgres_probe_against_real_server(pg_server):  # noqa: F811
    conn = pg_connect(pg_server)
    try:
        with conn.cursor() as cur:
            # The server is shared with other test modules: use databases of this test's own
            # (health_noext never gets the extension, whatever other tests do elsewhere).
            for name in ('health_probe', 'health_noext'):
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute('CREATE DATABASE %s' % name)
    finally:
        conn.close()
    conn = pg_connect(dict(pg_server, db='health_probe'))
    try:
        with conn.cursor() as cur:
            cur.execute('CREATE EXTENSION IF NOT EXISTS vector')
    finally:
        conn.close()
    common = {'type': 'postgres', 'host': pg_server['login_host'], 'port': pg_server['login_port'],
              'user': pg_server['login_user'], 'ssl_mode': 'disable'}
    result = run_module('service_health', {'fail_on_error': False, 'probes': [
        dict(common, name='pg', password=pg_server['login_password'], db='health_probe', extension='vector'),
        dict(common, name='pg-noext', password=pg_server['login_password'], db='health_noext', extension='vector'),
        dict(common, name='pg-badpass', password='wrong-pass-9', db=pg_server['db']),
        dict(common, name='pg-nodb', password=pg_server['login_password'], db='does_not_exist'),
    ]})
    probes = by_name(result)
    assert probes['pg']['ok'] is True, probes['pg']['error']
    assert probes['pg']['detail']['server_version'].startswith('18')
    assert probes['pg']['detail']['extension_version'].startswith('0.')
    assert probes['pg-noext']['error'].startswith("extension 'vector' is not installed in database '%s' (available "
                                                  "(version 0." % 'health_noext')
    assert 'password authentication failed for user "%s"' % pg_server['login_user'] in probes['pg-badpass']['error']
    assert 'database "does_not_exist" does not exist' in probes['pg-nodb']['error']
    text = json.dumps(result)
    assert pg_server['login_password'] not in text and 'wrong-pass-9' not in text


# ---------------------------------------------------------------------------------- milvus
def test_milvus_probe_against_real_server(milvus_server):  # noqa: F811
    from pymilvus import MilvusClient
    client = MilvusClient(uri=milvus_server)
    try:
        for name in ('health_loaded', 'health_released'):
            if client.has_collection(name):
                client.drop_collection(name)
            client.create_collection(name, dimension=4)  # quick setup: indexed and loaded
        client.release_collection('health_released')
    finally:
        client.close()
    result = run_module('service_health', {'fail_on_error': False, 'timeout': 90, 'probes': [
        {'name': 'milvus', 'type': 'milvus', 'uri': milvus_server, 'timeout': 30},
        {'name': 'loaded', 'type': 'milvus', 'uri': milvus_server, 'collection': 'health_loaded', 'timeout': 30},
        {'name': 'released', 'type': 'milvus', 'uri': milvus_server, 'collection': 'health_released', 'timeout': 30},
        {'name': 'absent', 'type': 'milvus', 'uri': milvus_server, 'collection': 'health_nope', 'timeout': 30},
        {'name': 'down', 'type': 'milvus', 'uri': 'http://127.0.0.1:%d' % free_port(), 'timeout': 3},
    ]})
    probes = by_name(result)
    assert probes['milvus']['ok'] is True, probes['milvus']['error']
    assert probes['milvus']['detail']['server_version'].startswith('v2.3')
    assert probes['loaded']['ok'] is True and probes['loaded']['detail']['load_state'] == 'Loaded'
    assert probes['released']['error'] == "collection 'health_released' is not loaded (load state NotLoad)"
    assert probes['absent']['error'] == "collection 'health_nope' does not exist"
    assert probes['down']['ok'] is False and probes['down']['error'].startswith('Milvus at http://127.0.0.1:')


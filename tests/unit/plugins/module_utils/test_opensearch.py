"""Unit tests for plugins/module_utils/_opensearch.py: validation, rendering, comparison, planning, transport."""
import copy
import json
import os
import socket
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ansible_collections.aistack.infra.plugins.module_utils import _http
from ansible_collections.aistack.infra.plugins.module_utils import _opensearch as osu
from ansible_collections.aistack.infra.plugins.module_utils._opensearch import (
    KnnIndexManager,
    OpenSearchClient,
    OpenSearchError,
    check_version_support,
    compare_definition,
    flatten_settings,
    norm,
    parse_host,
    parse_version,
    validate_definition,
    validate_index_name,
)
from lib.opensearch_double import OpenSearchDouble, make_test_pki


def params(**overrides):
    base = {
        'hosts': ['http://127.0.0.1:9'], 'user': None, 'password': None, 'use_ssl': False, 'verify_certs': True,
        'ca_certs': None, 'client_cert': None, 'client_key': None, 'ssl_assert_hostname': None, 'timeout': 5,
        'index': 'docs', 'field': 'embedding', 'dimension': 4,
        'method': {'name': 'hnsw', 'engine': 'faiss', 'space_type': 'l2', 'parameters': {}},
        'settings': {}, 'mappings': {}, 'recreate': 'never', 'state': 'present',
    }
    for key, value in overrides.items():
        if key == 'method':
            base['method'] = dict(base['method'], **value)
        else:
            base[key] = value
    return base


# ---------------------------------------------------------------------------------------- hosts
@pytest.mark.parametrize('host,use_ssl,expected', [
    ('search1', False, 'http://search1:9200'),
    ('search1:9201', True, 'https://search1:9201'),
    ('https://search1/prefix/', False, 'https://search1:9200/prefix'),
    ('http://[::1]:9200', False, 'http://[::1]:9200'),
])
def test_parse_host(host, use_ssl, expected):
    assert parse_host(host, use_ssl) == expected


@pytest.mark.parametrize('host,fragment', [
    ('', 'empty host'),
    ('ftp://x', 'not a valid OpenSearch URL'),
    ('https://admin:secret@search1:9200', 'put credentials in user/password'),
])
def test_parse_host_rejects(host, fragment):
    with pytest.raises(OpenSearchError) as err:
        parse_host(host)
    assert fragment in str(err.value)
    assert 'secret' not in str(err.value)


def test_mask_url_hides_credentials():
    mask_url = _http.mask_url
    assert mask_url('https://u:p4ss@h:9200/x') == 'https://********@h:9200/x'
    assert mask_url('http://h/x') == 'http://h/x'


def test_parse_version():
    assert parse_version('2.19.1') == (2, 19, 1)
    assert parse_version('3.0.0-SNAPSHOT') == (3, 0, 0)
    assert parse_version('2.11') == (2, 11, 0)


# ---------------------------------------------------------------------------------- validation
@pytest.mark.parametrize('name', ['docs', 'rag-docs_v2', 'a.b'])
def test_valid_index_names(name):
    validate_index_name(name)


@pytest.mark.parametrize('name,fragment', [
    ('Docs', 'lowercase'), ('a b', 'spaces'), ('a*', 'must be lowercase'), ('_x', 'must not start'),
    ('..', "must not be '.'"), ('', 'required'), ('x' * 256, '255 bytes'),
])
def test_invalid_index_names(name, fragment):
    with pytest.raises(OpenSearchError) as err:
        validate_index_name(name)
    assert fragment in str(err.value)
    assert str(err.value).startswith('index')


def test_definition_renders_exact_body_with_explicit_engine():
    d = validate_definition(params(settings={'number_of_shards': 1, 'index': {'number_of_replicas': 0}},
                                   mappings={'properties': {'title': {'type': 'text'}}, 'dynamic': 'strict'},
                                   method={'parameters': {'m': 24, 'ef_construction': 128}}))
    assert d['settings'] == {'index': {'knn': True, 'number_of_shards': 1, 'number_of_replicas': 0}}
    assert d['mappings'] == {
        'dynamic': 'strict',
        'properties': {
            'title': {'type': 'text'},
            'embedding': {'type': 'knn_vector', 'dimension': 4,
                          'method': {'name': 'hnsw', 'engine': 'faiss', 'space_type': 'l2',
                                     'parameters': {'m': 24, 'ef_construction': 128}}},
        },
    }
    assert d['flat_settings'] == {'index.knn': True, 'index.number_of_shards': 1, 'index.number_of_replicas': 0}


def test_definition_does_not_modify_the_callers_mappings():
    p = params(mappings={'properties': {'title': {'type': 'text'}}})
    before = copy.deepcopy(p)
    validate_definition(p)
    assert p == before


@pytest.mark.parametrize('overrides,fragment', [
    ({'dimension': 0}, 'dimension must be an integer 1..16000, got 0'),
    ({'dimension': 16001}, 'dimension must be an integer 1..16000, got 16001'),
    ({'dimension': True}, 'dimension must be an integer'),
    ({'field': 'a.b'}, "field: 'a.b' is not usable"),
    ({'field': '_id'}, 'must not start with'),
    ({'method': {'engine': 'lucene', 'space_type': 'l1'}},
     'method.space_type=l1 is not supported by engine lucene with method hnsw; allowed: l2, cosinesimil, innerproduct'),
    ({'method': {'engine': 'faiss', 'space_type': 'linf'}}, 'method.space_type=linf is not supported by engine faiss'),
    ({'method': {'engine': 'lucene', 'name': 'ivf'}}, 'method.name=ivf is not available with method.engine=lucene'),
    ({'method': {'name': 'ivf'}}, 'method.name=ivf needs a trained model'),
    ({'method': {'parameters': {'m': 1}}}, 'method.parameters.m must be an integer 2..100, got 1'),
    ({'method': {'parameters': {'m': 101}}}, 'method.parameters.m must be an integer 2..100, got 101'),
    ({'method': {'parameters': {'m': '16'}}}, "method.parameters.m must be an integer 2..100, got '16'"),
    ({'method': {'parameters': {'ef_construction': 1}}}, 'method.parameters.ef_construction must be an integer >= 2'),
    ({'method': {'engine': 'lucene', 'parameters': {'ef_search': 100}}},
     'method.parameters: ef_search not supported by lucene/hnsw; allowed: m, ef_construction'),
    ({'method': {'parameters': {'encoder': {'name': 'pq'}}}}, 'encoder.name=pq needs a trained model'),
    ({'method': {'parameters': {'encoder': {'name': 'zz'}}}}, 'encoder must be a dict with name one of: flat, sq, pq'),
    ({'method': {'parameters': {'encoder': {'name': 'sq', 'parameters': {'type': 'int8'}}}}}, 'must be fp16'),
    ({'settings': {'index': {'knn': False}}}, 'settings.index.knn must be true'),
    ({'settings': {'uuid': 'x'}}, 'settings.index.uuid is set by OpenSearch'),
    ({'settings': {'number_of_shards': 0}}, 'settings.index.number_of_shards must be an integer >= 1'),
    ({'mappings': {'properties': {'embedding': {'type': 'keyword'}}}}, 'mappings.properties.embedding: the vector field'),
    ({'mappings': {'properties': {'a.b': {'type': 'keyword'}}}}, 'dotted field name'),
    ({'mappings': {'properties': {'v2': {'type': 'knn_vector', 'dimension': 3}}}}, 'other knn_vector fields'),
    ({'mappings': {'properties': {'title': 'text'}}}, 'mappings.properties.title must be a dict'),
    ({'mappings': {'properties': []}}, 'mappings.properties must be a dict'),
])
def test_bad_definitions_name_the_parameter(overrides, fragment):
    with pytest.raises(OpenSearchError) as err:
        validate_definition(params(**overrides))
    assert fragment in str(err.value)


def test_good_combinations():
    validate_definition(params(method={'engine': 'nmslib', 'space_type': 'linf'}))
    validate_definition(params(method={'engine': 'lucene', 'space_type': 'innerproduct', 'parameters': {'m': 100}}))
    validate_definition(params(method={'parameters': {'ef_search': 50, 'encoder': {'name': 'sq', 'parameters': {
        'type': 'fp16', 'clip': True}}}}))
    validate_definition(params(dimension=16000))


@pytest.mark.parametrize('engine,space,version,fragment', [
    ('lucene', 'innerproduct', (2, 12, 0), 'needs OpenSearch 2.13.0 or later; the server runs 2.12.0'),
    ('faiss', 'cosinesimil', (2, 18, 0), 'needs OpenSearch 2.19.0 or later'),
    ('nmslib', 'l2', (3, 0, 0), 'engine=nmslib cannot create new indexes on OpenSearch 3.0'),
])
def test_version_dependent_checks(engine, space, version, fragment):
    d = validate_definition(params(method={'engine': engine, 'space_type': space}))
    with pytest.raises(OpenSearchError) as err:
        check_version_support(d, version, creating=True)
    assert fragment in str(err.value)


def test_nmslib_on_2x_warns_and_existing_nmslib_on_3x_is_accepted():
    d = validate_definition(params(method={'engine': 'nmslib'}))
    assert 'deprecated' in check_version_support(d, (2, 19, 0), creating=True)[0]
    assert check_version_support(d, (3, 1, 0), creating=False)
    assert check_version_support(validate_definition(params()), (2, 19, 0), creating=True) == []


def test_flatten_and_norm():
    assert flatten_settings({'index': {'knn': True, 'knn.algo_param': {'ef_search': 100}}, 'refresh_interval': '1s'}) == {
        'index.knn': True, 'index.knn.algo_param.ef_search': 100, 'index.refresh_interval': '1s'}
    assert norm(True) == 'true' and norm(2.0) == '2' and norm(3) == '3'
    assert norm({'a': [False, 1]}) == {'a': ['false', '1']}


# ---------------------------------------------------------------------------------- comparison
def existing(definition):
    """What OpenSearch would return for an index created from ``definition``."""
    settings = dict((k, norm(v)) for k, v in definition['flat_settings'].items())
    settings.update({'index.number_of_shards': settings.get('index.number_of_shards', '1'),
                     'index.uuid': 'u', 'index.creation_date': '1'})
    return {'settings': settings, 'mappings': copy.deepcopy(definition['mappings'])}


def kinds(diffs):
    return sorted((d.path, d.kind) for d in diffs)


def test_identical_definition_has_no_difference():
    d = validate_definition(params(settings={'number_of_replicas': 0}, mappings={'properties': {'t': {'type': 'text'}}}))
    assert compare_definition(d, existing(d)) == []


def test_server_added_properties_are_ignored():
    d = validate_definition(params())
    current = existing(d)
    current['mappings']['properties']['dynamic_field'] = {'type': 'text'}
    assert compare_definition(d, current) == []


def test_differences_are_classified():
    old = validate_definition(params(settings={'number_of_shards': 1, 'number_of_replicas': 1},
                                     mappings={'properties': {'title': {'type': 'text'},
                                                              'tag': {'type': 'keyword', 'ignore_above': 10}}}))
    new = validate_definition(params(
        dimension=8, method={'space_type': 'innerproduct', 'parameters': {'m': 32}},
        settings={'number_of_shards': 2, 'number_of_replicas': 0, 'refresh_interval': '5s'},
        mappings={'dynamic': 'strict', '_source': {'excludes': ['embedding']},
                  'properties': {'title': {'type': 'keyword'}, 'tag': {'type': 'keyword', 'ignore_above': 20},
                                 'lang': {'type': 'keyword'}}}))
    assert kinds(compare_definition(new, existing(old))) == [
        ('mappings._source', 'immutable'),
        ('mappings.dynamic', 'dynamic'),
        ('mappings.properties.embedding.dimension', 'immutable'),
        ('mappings.properties.embedding.method.parameters', 'immutable'),
        ('mappings.properties.embedding.method.space_type', 'immutable'),
        ('mappings.properties.lang', 'additive'),
        ('mappings.properties.tag.ignore_above', 'dynamic'),
        ('mappings.properties.title.type', 'immutable'),
        ('settings.index.number_of_replicas', 'dynamic'),
        ('settings.index.number_of_shards', 'immutable'),
        ('settings.index.refresh_interval', 'dynamic'),
    ]


def test_sub_fields_and_object_properties_are_additive():
    old = validate_definition(params(mappings={'properties': {'meta': {'properties': {'a': {'type': 'keyword'}}},
                                                              'title': {'type': 'text'}}}))
    new = validate_definition(params(mappings={'properties': {
        'meta': {'properties': {'a': {'type': 'keyword'}, 'b': {'type': 'long'}}},
        'title': {'type': 'text', 'fields': {'raw': {'type': 'keyword'}}}}}))
    assert kinds(compare_definition(new, existing(old))) == [
        ('mappings.properties.meta.properties.b', 'additive'),
        ('mappings.properties.title.fields.raw', 'additive'),
    ]


def test_missing_engine_or_extra_vector_options_on_the_server_are_immutable_differences():
    d = validate_definition(params())
    current = existing(d)
    vec = current['mappings']['properties']['embedding']
    del vec['method']['engine']
    vec['mode'] = 'on_disk'
    assert kinds(compare_definition(d, current)) == [
        ('mappings.properties.embedding.method.engine', 'immutable'),
        ('mappings.properties.embedding.mode', 'immutable'),
    ]


def test_server_defaults_that_equal_the_request_are_not_differences():
    d = validate_definition(params())
    current = existing(d)
    vec = current['mappings']['properties']['embedding']
    del vec['method']['space_type']
    vec['data_type'] = 'float'
    assert compare_definition(d, current) == []


def test_not_a_knn_index_is_an_immutable_difference():
    d = validate_definition(params())
    current = existing(d)
    del current['settings']['index.knn']
    assert kinds(compare_definition(d, current)) == [('settings.index.knn', 'immutable')]


# ------------------------------------------------------------------------------------ manager
class FakeClient:
    """Records calls; answers from an in-memory index like OpenSearch."""

    def __init__(self, version='2.19.1', index=None):
        self.version = version
        self.index = index
        self.calls = []

    def info(self):
        return {'version': {'number': self.version, 'distribution': 'opensearch'}}

    def get_index(self, index):
        self.calls.append(('GET', '/' + index, None))
        if self.index is None:
            return None
        return {index: copy.deepcopy(self.index)}

    def create_index(self, index, body):
        self.calls.append(('PUT', '/' + index, body))

    def delete_index(self, index):
        self.calls.append(('DELETE', '/' + index, None))

    def put_settings(self, index, body):
        self.calls.append(('PUT', '/%s/_settings' % index, body))

    def put_mapping(self, index, body):
        self.calls.append(('PUT', '/%s/_mapping' % index, body))

    def writes(self):
        return [c for c in self.calls if c[0] != 'GET']


def test_manager_create_check_mode_sends_nothing():
    client = FakeClient()
    result = KnnIndexManager(client, params(), check_mode=True).run()
    assert result['changed'] is True
    assert client.writes() == []
    body = json.loads(result['actions'][0][len('PUT /docs '):])
    assert body['mappings']['properties']['embedding']['method']['engine'] == 'faiss'
    assert result['index']['settings'] == {'index.knn': 'true'}
    assert result['diff']['before'] == {}


def test_manager_create_sends_exactly_the_body():
    client = FakeClient()
    result = KnnIndexManager(client, params()).run()
    assert client.writes() == [('PUT', '/docs', {
        'settings': {'index': {'knn': True}},
        'mappings': {'properties': {'embedding': {'type': 'knn_vector', 'dimension': 4, 'method': {
            'name': 'hnsw', 'engine': 'faiss', 'space_type': 'l2', 'parameters': {}}}}}})]
    assert result['actions'] == ['PUT /docs ' + osu.compact(client.writes()[0][2])]


def test_manager_no_change():
    d = validate_definition(params())
    client = FakeClient(index=dict(existing(d), aliases={}))
    result = KnnIndexManager(client, params()).run()
    assert result['changed'] is False and result['actions'] == [] and client.writes() == []


def test_manager_in_place_update_plans_settings_then_mapping():
    d = validate_definition(params(settings={'number_of_replicas': 1}))
    client = FakeClient(index=existing(d))
    p = params(settings={'number_of_replicas': 0}, mappings={'properties': {'lang': {'type': 'keyword'}}})
    result = KnnIndexManager(client, p).run()
    assert client.writes() == [
        ('PUT', '/docs/_settings', {'index': {'number_of_replicas': 0}}),
        ('PUT', '/docs/_mapping', {'properties': {'lang': {'type': 'keyword'}}}),
    ]
    assert result['changed'] is True
    assert sorted(x['change'] for x in result['differences']) == ['additive', 'dynamic']


def test_manager_immutable_difference_fails_without_writing():
    d = validate_definition(params())
    client = FakeClient(index=existing(d))
    with pytest.raises(OpenSearchError) as err:
        KnnIndexManager(client, params(dimension=8, method={'engine': 'lucene'})).run()
    msg = str(err.value)
    assert 'mappings.properties.embedding.dimension: 4 -> 8' in msg
    assert 'mappings.properties.embedding.method.engine: "faiss" -> "lucene"' in msg
    assert 'recreate=on_change' in msg
    assert client.writes() == []


def test_manager_recreate_on_change():
    d = validate_definition(params())
    client = FakeClient(index=existing(d))
    manager = KnnIndexManager(client, params(dimension=8, recreate='on_change'))
    manager.run()
    assert [c[:2] for c in client.writes()] == [('DELETE', '/docs'), ('PUT', '/docs')]
    assert client.writes()[1][2]['mappings']['properties']['embedding']['dimension'] == 8
    assert any('documents are lost' in w for w in manager.warnings)


def test_manager_absent():
    d = validate_definition(params())
    client = FakeClient(index=existing(d))
    result = KnnIndexManager(client, params(state='absent')).run()
    assert client.writes() == [('DELETE', '/docs', None)] and result['changed'] is True
    client = FakeClient()
    result = KnnIndexManager(client, params(state='absent')).run()
    assert client.writes() == [] and result['changed'] is False


def test_manager_validates_before_any_request():
    client = FakeClient()
    with pytest.raises(OpenSearchError):
        KnnIndexManager(client, params(dimension=0)).run()
    assert client.calls == []


# ------------------------------------------------------------------------- client + transport
@pytest.fixture()
def double():
    d = OpenSearchDouble(users={'admin': 's3cret'}).start()
    yield d
    d.stop()


def test_client_fails_over_to_the_next_host(double):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        dead = 'http://127.0.0.1:%d' % s.getsockname()[1]
    client = OpenSearchClient([dead, double.url], user='admin', password='s3cret', timeout=5)
    assert client.info()['version']['distribution'] == 'opensearch'


def test_client_reports_unreachable_hosts():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        dead = 'http://127.0.0.1:%d' % s.getsockname()[1]
    with pytest.raises(OpenSearchError) as err:
        OpenSearchClient([dead], timeout=2).info()
    assert 'cannot reach OpenSearch' in str(err.value) and dead in str(err.value)


def test_client_auth_failure_is_explained(double):
    with pytest.raises(OpenSearchError) as err:
        OpenSearchClient([double.url], user='admin', password='wrong').info()
    assert 'authentication failed (HTTP 401)' in str(err.value)
    assert 'wrong' not in str(err.value)


def test_client_error_body_is_shown(double):
    client = OpenSearchClient([double.url], user='admin', password='s3cret')
    with pytest.raises(OpenSearchError) as err:
        client.delete_index('nope')
    assert 'DELETE /nope: HTTP 404 index_not_found_exception: no such index [nope]' in str(err.value)


def test_alias_is_refused():
    class AliasClient(FakeClient):
        def get_index(self, index):
            self.calls.append(('GET', '/' + index, None))
            return {'docs-000001': {'settings': {}, 'mappings': {}}}
    client = AliasClient()
    with pytest.raises(OpenSearchError) as err:
        KnnIndexManager(client, params()).run()
    assert "index: 'docs' is an alias or pattern for docs-000001" in str(err.value)
    assert client.writes() == []


def test_not_opensearch_is_refused():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            data = json.dumps({'version': {'number': '8.15.0', 'build_flavor': 'default'}}).encode()
            self.send_response(200)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass
    server = HTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(OpenSearchError) as err:
            OpenSearchClient(['http://127.0.0.1:%d' % server.server_address[1]]).info()
        assert 'is not OpenSearch' in str(err.value)
    finally:
        server.shutdown()
        server.server_close()


def test_http_request_over_unix_socket():
    path = os.path.join(tempfile.mkdtemp(), 'api.sock')
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        request = conn.recv(65536)
        body = json.dumps({'path': request.split(b' ')[1].decode()}).encode()
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/json\r\n\r\n%s' % (len(body), body))
        conn.close()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        resp = _http.http_request('GET', 'http://localhost/containers/web/json', unix_socket=path, timeout=5)
        assert resp.status == 200 and resp.json() == {'path': '/containers/web/json'}
    finally:
        thread.join(5)
        srv.close()
        os.unlink(path)


# ----------------------------------------------------------------------------------------- TLS
@pytest.fixture(scope='module')
def tls_double():
    """The OpenSearch double behind TLS that requires a client certificate."""
    pki = make_test_pki(tempfile.mkdtemp())
    double = OpenSearchDouble(tls=pki, require_client_cert=True).start()
    yield double, pki
    double.stop()


def test_tls_with_ca_client_cert_and_asserted_hostname(tls_double):
    double, pki = tls_double
    url = 'https://127.0.0.1:%d' % double.port
    client = OpenSearchClient([url], ca_certs=pki['ca'], client_cert=pki['client_cert'], client_key=pki['client_key'],
                              ssl_assert_hostname='search.test', timeout=5)
    assert client.info()['version']['distribution'] == 'opensearch'


@pytest.mark.parametrize('kwargs,fragment', [
    ({'client_cert': 'C', 'client_key': 'K', 'ssl_assert_hostname': 'search.test'}, 'CERTIFICATE_VERIFY_FAILED'),
    ({'ca_certs': 'CA', 'client_cert': 'C', 'client_key': 'K'}, "IP address mismatch"),
    ({'ca_certs': 'CA', 'ssl_assert_hostname': 'search.test'}, 'cannot reach OpenSearch'),
])
def test_tls_failures(tls_double, kwargs, fragment):
    double, pki = tls_double
    names = {'CA': pki['ca'], 'C': pki['client_cert'], 'K': pki['client_key']}
    kwargs = dict((k, names.get(v, v)) for k, v in kwargs.items())
    client = OpenSearchClient(['https://127.0.0.1:%d' % double.port], timeout=5, **kwargs)
    with pytest.raises(OpenSearchError) as err:
        client.info()
    assert fragment in str(err.value)


def test_tls_verification_can_be_disabled(tls_double):
    double, pki = tls_double
    client = OpenSearchClient(['127.0.0.1:%d' % double.port], use_ssl=True, verify_certs=False,
                              client_cert=pki['client_cert'], client_key=pki['client_key'], timeout=5)
    assert client.info()['version']['number'] == '2.19.1'


def test_tls_bad_ca_file_is_reported_before_any_request():
    with pytest.raises(OpenSearchError) as err:
        OpenSearchClient(['https://127.0.0.1:1'], ca_certs='/nonexistent/ca.pem')
    assert 'TLS setup failed (ca_certs/client_cert/client_key)' in str(err.value)

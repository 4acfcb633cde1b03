"""Integration tests of aistack.infra.opensearch_knn_index through real ansible-playbook.

OpenSearch cannot run on the test machine: the module talks HTTP to the stateful OpenSearch 2.x
TEST DOUBLE in tests/lib/opensearch_double.py, and every assertion about the index state is made
with an independent request to the double (or its request log), never with the module's own result.
"""
import json
import socket
import urllib.request
from urllib.error import HTTPError

import pytest

from lib.ansible_run import run_module
from lib.opensearch_double import OpenSearchDouble

ADMIN_PASSWORD = 'adm1n-Secret-42'


@pytest.fixture()
def double():
    d = OpenSearchDouble(users={'admin': ADMIN_PASSWORD}).start()
    yield d
    d.stop()


def args(double, **extra):
    base = {
        'hosts': [double.url], 'user': 'admin', 'password': ADMIN_PASSWORD,
        'index': 'docs', 'field': 'embedding', 'dimension': 384,
        'method': {'engine': 'lucene', 'space_type': 'cosinesimil', 'parameters': {'m': 24, 'ef_construction': 128}},
        'settings': {'number_of_shards': 1, 'number_of_replicas': 0},
        'mappings': {'properties': {'title': {'type': 'text'}, 'source': {'type': 'keyword'}}},
    }
    base.update(extra)
    return base


def get(double, path):
    """Independent GET to the double: (status, JSON)."""
    req = urllib.request.Request(double.url + path)
    req.add_header('Authorization', 'Basic ' + __import__('base64').b64encode(
        ('admin:' + ADMIN_PASSWORD).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b'null')
    except HTTPError as exc:
        return exc.code, json.loads(exc.read() or b'null')


EXPECTED_BODY = {
    'settings': {'index': {'knn': True, 'number_of_shards': 1, 'number_of_replicas': 0}},
    'mappings': {'properties': {
        'title': {'type': 'text'},
        'source': {'type': 'keyword'},
        'embedding': {'type': 'knn_vector', 'dimension': 384, 'method': {
            'name': 'hnsw', 'engine': 'lucene', 'space_type': 'cosinesimil',
            'parameters': {'m': 24, 'ef_construction': 128}}},
    }},
}


def test_check_mode_creates_nothing_then_real_run_creates_exactly_the_body(double):
    result = run_module('opensearch_knn_index', args(double), check=True, diff=True)
    assert result['failed'] is False, result.get('msg')
    assert result['changed'] is True
    assert result['actions'] == ['PUT /docs ' + json.dumps(EXPECTED_BODY, sort_keys=True, separators=(',', ':'))]
    assert result['diff']['before'] == {}
    assert get(double, '/docs')[0] == 404
    assert double.writes() == []

    result = run_module('opensearch_knn_index', args(double))
    assert result['failed'] is False, result.get('msg')
    assert result['changed'] is True
    writes = double.writes()
    assert len(writes) == 1
    assert writes[0]['method'] == 'PUT' and writes[0]['path'] == '/docs' and writes[0]['body'] == EXPECTED_BODY
    assert writes[0]['content_type'] == 'application/json'
    status, data = get(double, '/docs?flat_settings=true')
    assert status == 200
    assert data['docs']['mappings'] == EXPECTED_BODY['mappings']
    assert data['docs']['settings']['index.knn'] == 'true'
    assert data['docs']['settings']['index.number_of_replicas'] == '0'
    assert result['index']['mappings'] == EXPECTED_BODY['mappings']
    assert result['invocation']['module_args']['password'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    assert ADMIN_PASSWORD not in json.dumps(result)

    before = len(double.requests)
    result = run_module('opensearch_knn_index', args(double))
    assert result['failed'] is False and result['changed'] is False and result['actions'] == []
    assert result['differences'] == []
    assert [r['method'] for r in double.requests[before:]] == ['GET', 'GET']  # GET / and GET /docs only


def test_additive_mapping_and_dynamic_settings_are_applied_in_place(double):
    assert run_module('opensearch_knn_index', args(double))['changed'] is True
    changed = args(double, settings={'number_of_shards': 1, 'number_of_replicas': 1, 'refresh_interval': '5s'},
                   mappings={'dynamic': 'strict', 'properties': {
                       'title': {'type': 'text', 'fields': {'raw': {'type': 'keyword'}}},
                       'source': {'type': 'keyword'}, 'lang': {'type': 'keyword'}}})
    check = run_module('opensearch_knn_index', changed, check=True, diff=True)
    assert check['changed'] is True and len(double.writes()) == 1
    assert sorted((d['path'], d['change']) for d in check['differences']) == [
        ('mappings.dynamic', 'dynamic'),
        ('mappings.properties.lang', 'additive'),
        ('mappings.properties.title.fields.raw', 'additive'),
        ('settings.index.number_of_replicas', 'dynamic'),
        ('settings.index.refresh_interval', 'dynamic'),
    ]
    assert check['diff']['before']['settings'] == {'index.knn': 'true', 'index.number_of_replicas': '0',
                                                   'index.number_of_shards': '1'}
    assert check['diff']['after']['settings']['index.refresh_interval'] == '5s'

    result = run_module('opensearch_knn_index', changed)
    assert result['failed'] is False, result.get('msg')
    assert result['actions'] == check['actions']
    writes = double.writes()[1:]
    assert [(w['method'], w['path']) for w in writes] == [('PUT', '/docs/_settings'), ('PUT', '/docs/_mapping')]
    assert writes[0]['body'] == {'index': {'number_of_replicas': 1, 'refresh_interval': '5s'}}
    assert writes[1]['body'] == {'dynamic': 'strict', 'properties': {
        'lang': {'type': 'keyword'}, 'title': {'type': 'text', 'fields': {'raw': {'type': 'keyword'}}}}}
    data = get(double, '/docs')[1]['docs']
    assert data['mappings']['properties']['lang'] == {'type': 'keyword'}
    assert data['mappings']['properties']['title']['fields'] == {'raw': {'type': 'keyword'}}
    assert data['mappings']['properties']['embedding'] == EXPECTED_BODY['mappings']['properties']['embedding']
    assert data['settings']['index']['number_of_replicas'] == '1'
    assert data['settings']['index']['refresh_interval'] == '5s'
    again = run_module('opensearch_knn_index', changed)
    assert again['changed'] is False and len(double.writes()) == 3


@pytest.fixture(scope='module')
def created():
    """One double with the index of args() created by the module (shared by tests that must not change it)."""
    d = OpenSearchDouble(users={'admin': ADMIN_PASSWORD}).start()
    try:
        assert run_module('opensearch_knn_index', args(d))['changed'] is True
        yield d
    finally:
        d.stop()


@pytest.mark.parametrize('change,expected', [
    ({'dimension': 768}, 'mappings.properties.embedding.dimension: 384 -> 768'),
    ({'method': {'engine': 'faiss', 'space_type': 'cosinesimil', 'parameters': {'m': 24, 'ef_construction': 128}}},
     'mappings.properties.embedding.method.engine: "lucene" -> "faiss"'),
    ({'method': {'engine': 'lucene', 'space_type': 'l2', 'parameters': {'m': 24, 'ef_construction': 128}}},
     'mappings.properties.embedding.method.space_type: "cosinesimil" -> "l2"'),
    ({'method': {'engine': 'lucene', 'space_type': 'cosinesimil', 'parameters': {'m': 32, 'ef_construction': 128}}},
     'mappings.properties.embedding.method.parameters: {"ef_construction":128,"m":24} -> {"ef_construction":128,"m":32}'),
    ({'settings': {'number_of_shards': 3, 'number_of_replicas': 0}}, 'settings.index.number_of_shards: "1" -> 3'),
    ({'mappings': {'properties': {'title': {'type': 'keyword'}, 'source': {'type': 'keyword'}}}},
     'mappings.properties.title.type: "text" -> "keyword"'),
])
def test_immutable_change_fails_with_the_difference_and_changes_nothing(created, change, expected):
    double = created
    before = get(double, '/docs')[1]
    writes = len(double.writes())
    result = run_module('opensearch_knn_index', args(double, **change))
    assert result['failed'] is True
    assert expected in result['msg']
    assert 'recreate=on_change' in result['msg'] and 'deletes all its documents' in result['msg']
    assert len(double.writes()) == writes
    assert get(double, '/docs')[1] == before


def test_recreate_on_change_deletes_and_recreates(double):
    assert run_module('opensearch_knn_index', args(double))['changed'] is True
    uuid_before = get(double, '/docs?flat_settings=true')[1]['docs']['settings']['index.uuid']
    new = args(double, dimension=768, recreate='on_change',
               method={'engine': 'faiss', 'space_type': 'innerproduct', 'parameters': {'m': 16, 'ef_search': 64}})
    check = run_module('opensearch_knn_index', new, check=True)
    assert check['changed'] is True
    assert [a.split(' ')[:2] for a in check['actions']] == [['DELETE', '/docs'], ['PUT', '/docs']]
    assert len(double.writes()) == 1
    result = run_module('opensearch_knn_index', new)
    assert result['failed'] is False, result.get('msg')
    assert result['actions'] == check['actions']
    assert 'documents are lost' in json.dumps(result.get('warnings'))
    assert [(w['method'], w['path']) for w in double.writes()[1:]] == [('DELETE', '/docs'), ('PUT', '/docs')]
    data = get(double, '/docs?flat_settings=true')[1]['docs']
    assert data['settings']['index.uuid'] != uuid_before
    assert data['mappings']['properties']['embedding'] == {
        'type': 'knn_vector', 'dimension': 768,
        'method': {'name': 'hnsw', 'engine': 'faiss', 'space_type': 'innerproduct', 'parameters': {'m': 16, 'ef_search': 64}}}
    assert run_module('opensearch_knn_index', new)['changed'] is False


def test_absent_deletes(double):
    assert run_module('opensearch_knn_index', args(double))['changed'] is True
    check = run_module('opensearch_knn_index', {'hosts': [double.url], 'user': 'admin', 'password': ADMIN_PASSWORD,
                                                'index': 'docs', 'state': 'absent'}, check=True)
    assert check['changed'] is True and check['actions'] == ['DELETE /docs'] and get(double, '/docs')[0] == 200
    result = run_module('opensearch_knn_index', {'hosts': [double.url], 'user': 'admin', 'password': ADMIN_PASSWORD,
                                                 'index': 'docs', 'state': 'absent'})
    assert result['changed'] is True and result['actions'] == ['DELETE /docs']
    assert get(double, '/docs')[0] == 404
    again = run_module('opensearch_knn_index', {'hosts': [double.url], 'user': 'admin', 'password': ADMIN_PASSWORD,
                                                'index': 'docs', 'state': 'absent'})
    assert again['changed'] is False and again['actions'] == []


@pytest.mark.parametrize('bad,fragment', [
    ({'dimension': 0}, 'dimension must be an integer 1..16000, got 0'),
    ({'method': {'engine': 'lucene', 'space_type': 'l1'}},
     'method.space_type=l1 is not supported by engine lucene with method hnsw; allowed: l2, cosinesimil, innerproduct'),
    ({'method': {'parameters': {'m': 1}}}, 'method.parameters.m must be an integer 2..100, got 1'),
    ({'method': {'name': 'ivf'}}, 'method.name=ivf needs a trained model'),
    ({'method': {'engine': 'annoy'}}, 'value of engine must be one of: faiss, lucene, nmslib, got: annoy'),
    ({'index': 'Docs'}, "index: 'Docs' is not a valid index name: it must be lowercase"),
])
def test_bad_input_changes_nothing(double, bad, fragment):
    result = run_module('opensearch_knn_index', args(double, **bad))
    assert result['failed'] is True
    assert fragment in result['msg']
    assert double.requests == []  # validated before the first request


def test_server_side_rejection_is_reported_and_creates_nothing(double):
    result = run_module('opensearch_knn_index', args(double, settings={'index': {'made_up_setting': 1}}))
    assert result['failed'] is True
    assert 'PUT /docs failed: HTTP 400 illegal_argument_exception: unknown setting [index.made_up_setting]' in result['msg']
    assert get(double, '/docs')[0] == 404


def test_nmslib_is_refused_before_creating_on_opensearch_3():
    double = OpenSearchDouble(version='3.1.0').start()
    try:
        result = run_module('opensearch_knn_index', {'hosts': [double.url], 'index': 'docs', 'dimension': 8,
                                                     'method': {'engine': 'nmslib'}})
        assert result['failed'] is True
        assert 'method.engine=nmslib cannot create new indexes on OpenSearch 3.0 or later (the server runs 3.1.0)' \
            in result['msg']
        assert double.writes() == []
    finally:
        double.stop()


def test_version_dependent_space_is_refused_on_older_servers():
    double = OpenSearchDouble(version='2.17.1').start()
    try:
        result = run_module('opensearch_knn_index', {'hosts': [double.url], 'index': 'docs', 'dimension': 8,
                                                     'method': {'engine': 'faiss', 'space_type': 'cosinesimil'}})
        assert result['failed'] is True
        assert 'needs OpenSearch 2.19.0 or later; the server runs 2.17.1' in result['msg']
        assert double.writes() == []
    finally:
        double.stop()


def test_wrong_password_and_failover(double):
    result = run_module('opensearch_knn_index', args(double, password='not-the-password'))
    assert result['failed'] is True and 'authentication failed (HTTP 401)' in result['msg']
    assert 'not-the-password' not in json.dumps(result)
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        dead = 'http://127.0.0.1:%d' % sock.getsockname()[1]
    result = run_module('opensearch_knn_index', args(double, hosts=[dead, double.url]))
    assert result['failed'] is False and result['changed'] is True
    assert get(double, '/docs')[0] == 200


def test_existing_index_without_recorded_engine_is_not_silently_adopted(double):
    # an index created elsewhere without an explicit engine (OpenSearch picked its version's default)
    body = {'settings': {'index.knn': True}, 'mappings': {'properties': {'embedding': {
        'type': 'knn_vector', 'dimension': 384, 'method': {'name': 'hnsw', 'space_type': 'cosinesimil'}}}}}
    req = urllib.request.Request(double.url + '/legacy', data=json.dumps(body).encode(), method='PUT',
                                 headers={'Content-Type': 'application/json', 'Authorization': 'Basic ' +
                                          __import__('base64').b64encode(('admin:' + ADMIN_PASSWORD).encode()).decode()})
    urllib.request.urlopen(req, timeout=10).close()
    result = run_module('opensearch_knn_index', args(double, index='legacy', settings={}, mappings={},
                                                     method={'engine': 'faiss', 'space_type': 'cosinesimil'}))
    assert result['failed'] is True
    assert 'mappings.properties.embedding.method.engine: (absent) -> "faiss"' in result['msg']
    assert len(double.writes()) == 1  # only the set-up PUT above


def test_double_is_understood_by_opensearch_py(double):
    """The official client (an independent reader of the REST API) parses the double's answers and errors."""
    opensearchpy = pytest.importorskip('opensearchpy')
    client = opensearchpy.OpenSearch(hosts=[double.url], http_auth=('admin', ADMIN_PASSWORD), timeout=10)
    assert client.info()['version']['distribution'] == 'opensearch'
    body = {'settings': {'index': {'knn': True}}, 'mappings': {'properties': {'v': {
        'type': 'knn_vector', 'dimension': 3, 'method': {'name': 'hnsw', 'engine': 'faiss', 'space_type': 'l2'}}}}}
    assert client.indices.create(index='viaclient', body=body)['acknowledged'] is True
    assert client.indices.exists(index='viaclient') is True
    assert client.indices.exists(index='nothere') is False
    with pytest.raises(opensearchpy.exceptions.RequestError) as err:
        client.indices.create(index='viaclient', body=body)
    assert err.value.error == 'resource_already_exists_exception'
    with pytest.raises(opensearchpy.exceptions.NotFoundError) as err:
        client.indices.get_mapping(index='nothere')
    assert err.value.error == 'index_not_found_exception'
    with pytest.raises(opensearchpy.exceptions.RequestError) as err:
        client.indices.put_mapping(index='viaclient', body={'properties': {'v': {
            'type': 'knn_vector', 'dimension': 4, 'method': {'name': 'hnsw', 'engine': 'faiss', 'space_type': 'l2'}}}})
    assert err.value.error == 'illegal_argument_exception' and 'Cannot update parameter [dimension]' in str(err.value)
    with pytest.raises(opensearchpy.exceptions.RequestError) as err:
        client.indices.put_settings(index='viaclient', body={'index': {'number_of_shards': 2}})
    assert "Can't update non dynamic settings [[index.number_of_shards]]" in str(err.value)
    assert client.indices.put_settings(index='viaclient', body={'index': {'number_of_replicas': 0}})['acknowledged']
    settings = client.indices.get_settings(index='viaclient', flat_settings=True)['viaclient']['settings']
    assert settings['index.number_of_replicas'] == '0' and settings['index.knn'] == 'true'
    assert client.cluster.health()['status'] == 'green'
    assert client.indices.delete(index='viaclient')['acknowledged'] is True

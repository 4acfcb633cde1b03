"""Integration tests of aistack.infra.opensearch_knn_index through real ansible-playbook.

The server is a REAL OpenSearch node with the k-NN plugin (tests/lib/opensearch_server.py: 3.5.0 by
default, from Maven Central's artifacts), one per session. Every assertion about the index is made with
an independent opensearch-py client, never with the module's own result.

What the real node here cannot do, and where it is covered instead:
- the faiss and nmslib engines (no native libraries in Maven Central's k-NN zip: a faiss index with
  documents kills the node): unit tests of the definition, comparison and version checks
  (tests/unit/plugins/module_utils/test_opensearch.py);
- basic authentication and TLS (no security plugin): unit tests against the TLS/auth test double
  (tests/lib/opensearch_double.py);
- servers older than 2.19 (version-dependent checks): unit tests.
"""
import json
import socket
import uuid

import pytest

from lib.ansible_run import run_module, run_playbook

opensearchpy = pytest.importorskip('opensearchpy')


@pytest.fixture()
def client(opensearch_server):
    """Independent opensearch-py client; deletes every index a test made."""
    osc = opensearchpy.OpenSearch(hosts=opensearch_server['hosts'], timeout=60)
    before = set(osc.indices.get(index='*', expand_wildcards='open,closed'))
    yield osc
    for name in set(osc.indices.get(index='*', expand_wildcards='open,closed')) - before:
        osc.indices.delete(index=name)


@pytest.fixture()
def index():
    return 'knn-' + uuid.uuid4().hex[:10]


def args(server, index, **extra):
    base = {
        'hosts': server['hosts'],
        'index': index, 'field': 'embedding', 'dimension': 4,
        'method': {'engine': 'lucene', 'space_type': 'cosinesimil', 'parameters': {'m': 24, 'ef_construction': 128}},
        'settings': {'number_of_shards': 1, 'number_of_replicas': 0},
        'mappings': {'properties': {'title': {'type': 'text'}, 'source': {'type': 'keyword'}}},
    }
    base.update(extra)
    return base


EXPECTED_BODY = {
    'settings': {'index': {'knn': True, 'number_of_shards': 1, 'number_of_replicas': 0}},
    'mappings': {'properties': {
        'title': {'type': 'text'},
        'source': {'type': 'keyword'},
        'embedding': {'type': 'knn_vector', 'dimension': 4, 'method': {
            'name': 'hnsw', 'engine': 'lucene', 'space_type': 'cosinesimil',
            'parameters': {'m': 24, 'ef_construction': 128}}},
    }},
}


def run_tasks(*tasks):
    """Several module runs in ONE ansible-playbook (each a dict of module args, optionally with the task
    keywords ``_check``/``_diff``), in order; returns their results. One process instead of one per run
    keeps the suite short on two cores."""
    play_tasks = []
    for number, task in enumerate(tasks):
        task = dict(task)
        entry = {'name': 'run %d' % number, 'aistack.infra.opensearch_knn_index': None, 'register': 'r%d' % number,
                 'ignore_errors': True, 'check_mode': bool(task.pop('_check', False)),
                 'diff': bool(task.pop('_diff', False))}
        entry['aistack.infra.opensearch_knn_index'] = task
        play_tasks.append(entry)
    play_tasks.append({'name': 'emit', 'ansible.builtin.debug': {
        'msg': '{{ [%s] }}' % ', '.join('r%d' % n for n in range(len(tasks)))}})
    proc = run_playbook([{'hosts': 'localhost', 'gather_facts': False, 'tasks': play_tasks}])
    try:
        out = json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError('ansible-playbook printed no JSON (rc=%s)\n%s\n%s'
                             % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])) from exc
    results = [t['hosts']['localhost'] for t in out['plays'][0]['tasks'][:len(tasks)]]
    for result in results:
        result.setdefault('failed', False)
    return results


def compact(obj):
    return json.dumps(obj, sort_keys=True, separators=(',', ':'))


def read(client, index):
    """The index as the server holds it: (flat settings, mappings), or None when absent."""
    if not client.indices.exists(index=index):
        return None
    data = client.indices.get(index=index, flat_settings=True)[index]
    return data['settings'], data['mappings']


def test_check_mode_then_create_exactly_then_idempotent_then_search(opensearch_server, client, index):
    check = run_module('opensearch_knn_index', args(opensearch_server, index), check=True, diff=True)
    assert check['failed'] is False, check.get('msg')
    assert check['changed'] is True
    assert check['actions'] == ['PUT /%s %s' % (index, compact(EXPECTED_BODY))]
    assert check['diff']['before'] == {}
    assert check['version'] == opensearch_server['version']
    assert read(client, index) is None  # check mode sent nothing

    result, again = run_tasks(dict(args(opensearch_server, index), _diff=True), args(opensearch_server, index))
    assert result['failed'] is False, result.get('msg')
    assert result['changed'] is True and result['actions'] == check['actions']
    assert again['failed'] is False, again.get('msg')
    assert again['changed'] is False and again['actions'] == [] and again['differences'] == []
    settings, mappings = read(client, index)
    assert mappings == EXPECTED_BODY['mappings']
    assert settings['index.knn'] == 'true'
    assert settings['index.number_of_shards'] == '1' and settings['index.number_of_replicas'] == '0'
    assert result['index']['mappings'] == mappings
    assert result['diff']['after']['mappings'] == mappings

    # The index works: the lucene HNSW graph answers a k-NN query with the nearest document first.
    docs = {'north': [0.0, 1.0, 0.0, 0.0], 'east': [1.0, 0.0, 0.0, 0.0], 'up': [0.0, 0.0, 1.0, 0.0],
            'north-east': [0.7, 0.7, 0.0, 0.0]}
    for name, vector in docs.items():
        client.index(index=index, id=name, body={'title': name, 'source': 'test', 'embedding': vector})
    client.indices.refresh(index=index)
    hits = client.search(index=index, body={'size': 3, 'query': {'knn': {'embedding': {
        'vector': [0.1, 0.95, 0.0, 0.0], 'k': 3}}}})['hits']['hits']
    assert [h['_id'] for h in hits] == ['north', 'north-east', 'east']
    assert hits[0]['_score'] > hits[1]['_score'] > hits[2]['_score']

    assert client.count(index=index)['count'] == 4


def test_additive_mapping_and_dynamic_settings_are_applied_in_place(opensearch_server, client, index):
    assert run_module('opensearch_knn_index', args(opensearch_server, index))['changed'] is True
    uuid_before = read(client, index)[0]['index.uuid']
    changed = args(opensearch_server, index,
                   settings={'number_of_shards': 1, 'number_of_replicas': 0, 'refresh_interval': '5s'},
                   mappings={'dynamic': 'strict', 'properties': {
                       'title': {'type': 'text', 'fields': {'raw': {'type': 'keyword'}}},
                       'source': {'type': 'keyword'}, 'lang': {'type': 'keyword'}}})
    check = run_module('opensearch_knn_index', changed, check=True, diff=True)
    assert check['failed'] is False, check.get('msg')
    assert check['changed'] is True
    assert sorted((d['path'], d['change']) for d in check['differences']) == [
        ('mappings.dynamic', 'dynamic'),
        ('mappings.properties.lang', 'additive'),
        ('mappings.properties.title.fields.raw', 'additive'),
        ('settings.index.refresh_interval', 'dynamic'),
    ]
    assert check['diff']['before']['settings'] == {'index.knn': 'true', 'index.number_of_replicas': '0',
                                                   'index.number_of_shards': '1'}
    assert check['diff']['after']['settings']['index.refresh_interval'] == '5s'
    settings, mappings = read(client, index)
    assert 'lang' not in mappings['properties'] and 'index.refresh_interval' not in settings

    result, again = run_tasks(changed, changed)
    assert result['failed'] is False, result.get('msg')
    assert again['failed'] is False and again['changed'] is False, again.get('msg')
    assert result['actions'] == check['actions']
    assert [a.split(' ')[:2] for a in result['actions']] == [['PUT', '/%s/_settings' % index],
                                                            ['PUT', '/%s/_mapping' % index]]
    settings, mappings = read(client, index)
    assert settings['index.uuid'] == uuid_before  # updated in place, not recreated
    assert settings['index.refresh_interval'] == '5s'
    assert mappings['dynamic'] == 'strict'
    assert mappings['properties']['lang'] == {'type': 'keyword'}
    assert mappings['properties']['title']['fields'] == {'raw': {'type': 'keyword'}}
    assert mappings['properties']['embedding'] == EXPECTED_BODY['mappings']['properties']['embedding']


IMMUTABLE_CHANGES = [
    ({'dimension': 8}, 'mappings.properties.embedding.dimension: 4 -> 8'),
    ({'method': {'engine': 'lucene', 'space_type': 'l2', 'parameters': {'m': 24, 'ef_construction': 128}}},
     'mappings.properties.embedding.method.space_type: "cosinesimil" -> "l2"'),
    ({'method': {'engine': 'lucene', 'space_type': 'cosinesimil', 'parameters': {'m': 32, 'ef_construction': 128}}},
     'mappings.properties.embedding.method.parameters: {"ef_construction":128,"m":24} -> {"ef_construction":128,"m":32}'),
    ({'settings': {'number_of_shards': 3, 'number_of_replicas': 0}}, 'settings.index.number_of_shards: "1" -> 3'),
    ({'mappings': {'properties': {'title': {'type': 'keyword'}, 'source': {'type': 'keyword'}}}},
     'mappings.properties.title.type: "text" -> "keyword"'),
]


def test_immutable_change_fails_with_the_difference_and_changes_nothing(opensearch_server, client, index):
    client.indices.create(index=index, body=EXPECTED_BODY)
    before = read(client, index)
    results = run_tasks(*[args(opensearch_server, index, **change) for change, _expected in IMMUTABLE_CHANGES])
    for (change, expected), result in zip(IMMUTABLE_CHANGES, results):
        assert result['failed'] is True, change
        assert expected in result['msg']
        assert 'recreate=on_change' in result['msg'] and 'deletes all its documents' in result['msg']
        assert result['actions'] == []
    assert read(client, index) == before


def test_recreate_on_change_deletes_and_recreates(opensearch_server, client, index):
    client.indices.create(index=index, body=EXPECTED_BODY)
    client.index(index=index, id='old', body={'title': 'old', 'embedding': [1, 0, 0, 0]}, refresh=True)
    uuid_before = read(client, index)[0]['index.uuid']
    new = args(opensearch_server, index, dimension=8, recreate='on_change',
               method={'engine': 'lucene', 'space_type': 'l2', 'parameters': {'m': 16, 'ef_construction': 64}})
    check = run_module('opensearch_knn_index', new, check=True)
    assert check['changed'] is True
    assert [a.split(' ')[:2] for a in check['actions']] == [['DELETE', '/' + index], ['PUT', '/' + index]]
    assert read(client, index)[0]['index.uuid'] == uuid_before and client.count(index=index)['count'] == 1

    result, again = run_tasks(new, new)
    assert result['failed'] is False, result.get('msg')
    assert again['failed'] is False and again['changed'] is False, again.get('msg')
    assert result['actions'] == check['actions']
    assert 'documents are lost' in json.dumps(result.get('warnings'))
    settings, mappings = read(client, index)
    assert settings['index.uuid'] != uuid_before
    assert client.count(index=index)['count'] == 0
    assert mappings['properties']['embedding'] == {
        'type': 'knn_vector', 'dimension': 8,
        'method': {'name': 'hnsw', 'engine': 'lucene', 'space_type': 'l2', 'parameters': {'m': 16, 'ef_construction': 64}}}


def test_absent_deletes(opensearch_server, client, index):
    client.indices.create(index=index, body=EXPECTED_BODY)
    absent = {'hosts': opensearch_server['hosts'], 'index': index, 'state': 'absent'}
    check = run_module('opensearch_knn_index', absent, check=True, diff=True)
    assert check['changed'] is True and check['actions'] == ['DELETE /' + index]
    assert check['diff']['before']['mappings'] == EXPECTED_BODY['mappings'] and check['diff']['after'] == {}
    assert read(client, index) is not None
    result, again = run_tasks(absent, absent)
    assert result['changed'] is True and result['actions'] == ['DELETE /' + index]
    assert again['changed'] is False and again['actions'] == []
    assert read(client, index) is None


BAD_INPUT = [
    ({'dimension': 0}, 'dimension must be an integer 1..16000, got 0'),
    ({'method': {'engine': 'lucene', 'space_type': 'l1'}},
     'method.space_type=l1 is not supported by engine lucene with method hnsw; allowed: l2, cosinesimil, innerproduct'),
    ({'method': {'parameters': {'m': 1}}}, 'method.parameters.m must be an integer 2..100, got 1'),
    ({'method': {'name': 'ivf'}}, 'method.name=ivf needs a trained model'),
    ({'method': {'engine': 'annoy'}}, 'value of engine must be one of: faiss, lucene, nmslib, got: annoy'),
    ({'index': 'Docs'}, "index: 'Docs' is not a valid index name: it must be lowercase"),
]


def test_bad_input_changes_nothing(opensearch_server, client, index):
    cases = list(BAD_INPUT)
    if opensearch_server['version'].startswith('3.'):
        cases.append(({'method': {'engine': 'nmslib'}},
                      'method.engine=nmslib cannot create new indexes on OpenSearch 3.0 or later'))
    before = sorted(client.indices.get(index='*'))
    results = run_tasks(*[dict(args(opensearch_server, index), **bad) for bad, _fragment in cases])
    for (bad, fragment), result in zip(cases, results):
        assert result['failed'] is True, bad
        assert fragment in result['msg']
    assert sorted(client.indices.get(index='*')) == before


def test_server_side_rejection_is_reported_and_creates_nothing(opensearch_server, client, index):
    result = run_module('opensearch_knn_index', args(opensearch_server, index,
                                                     settings={'index': {'made_up_setting': 1}}))
    assert result['failed'] is True
    # 3.x answers settings_exception, 2.19 illegal_argument_exception
    assert result['msg'].startswith('PUT /%s failed: HTTP 400 ' % index)
    assert 'exception: unknown setting [index.made_up_setting]' in result['msg']
    assert read(client, index) is None


def test_unreachable_host_fails_over_to_the_next(opensearch_server, client, index):
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        dead = 'http://127.0.0.1:%d' % sock.getsockname()[1]
    down, result = run_tasks(args(opensearch_server, index, hosts=[dead]),
                             args(opensearch_server, index, hosts=[dead] + opensearch_server['hosts']))
    assert down['failed'] is True and down['msg'].startswith('cannot reach OpenSearch (GET /) at %s' % dead)
    assert result['failed'] is False, result.get('msg')
    assert result['changed'] is True
    assert read(client, index)[1] == EXPECTED_BODY['mappings']


def test_existing_index_without_recorded_engine(opensearch_server, client, index):
    # An index created elsewhere without an explicit engine: the server records the one it chose.
    client.indices.create(index=index, body={'settings': {'index.knn': True}, 'mappings': {'properties': {
        'embedding': {'type': 'knn_vector', 'dimension': 4, 'method': {'name': 'hnsw', 'space_type': 'l2'}}}}})
    recorded = read(client, index)[1]['properties']['embedding']['method'].get('engine')
    result = run_module('opensearch_knn_index', args(opensearch_server, index, settings={}, mappings={},
                                                     method={'engine': 'lucene', 'space_type': 'l2'}))
    if recorded == 'lucene':
        assert result['failed'] is False and result['changed'] is False
    else:
        assert result['failed'] is True
        expected = '(absent)' if recorded is None else '"%s"' % recorded
        assert 'mappings.properties.embedding.method.engine: %s -> "lucene"' % expected in result['msg']

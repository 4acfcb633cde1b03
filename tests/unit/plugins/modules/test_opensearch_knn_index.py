"""Unit tests for plugins/modules/opensearch_knn_index.py: argument spec and the module's result shape."""
import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.aistack.infra.plugins.modules import opensearch_knn_index
from lib.opensearch_double import OpenSearchDouble


def run(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            opensearch_knn_index.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture()
def double():
    d = OpenSearchDouble().start()
    yield d
    d.stop()


def test_present_requires_dimension(capsys):
    code, result = run(capsys, {'index': 'docs'})
    assert code == 1 and 'state is present but all of the following are missing: dimension' in result['msg']


def test_method_choices_are_enforced(capsys):
    code, result = run(capsys, {'index': 'docs', 'dimension': 3, 'method': {'engine': 'annoy'}})
    assert code == 1 and 'value of engine must be one of: faiss, lucene, nmslib, got: annoy' in result['msg']


def test_user_and_password_go_together(capsys):
    code, result = run(capsys, {'index': 'docs', 'dimension': 3, 'user': 'admin'})
    assert code == 1 and 'parameters are required together: user, password' in result['msg']


def test_defaults_send_faiss_hnsw_l2_explicitly(capsys, double):
    code, result = run(capsys, {'hosts': [double.url], 'index': 'docs', 'dimension': 3})
    assert code == 0 and result['changed'] is True
    assert double.writes()[0]['body']['mappings']['properties']['embedding'] == {
        'type': 'knn_vector', 'dimension': 3,
        'method': {'name': 'hnsw', 'engine': 'faiss', 'space_type': 'l2', 'parameters': {}}}
    assert 'diff' not in result and result['version'] == '2.19.1'


def test_diff_mode_and_check_mode(capsys, double):
    code, result = run(capsys, {'hosts': [double.url], 'index': 'docs', 'dimension': 3,
                                '_ansible_check_mode': True, '_ansible_diff': True})
    assert code == 0 and result['changed'] is True and double.writes() == []
    assert result['diff']['before'] == {} and result['diff']['after']['settings'] == {'index.knn': 'true'}
    assert result['actions'][0].startswith('PUT /docs {')


def test_validation_error_sends_no_request(capsys, double):
    code, result = run(capsys, {'hosts': [double.url], 'index': 'docs', 'dimension': 3,
                                'method': {'engine': 'lucene', 'space_type': 'linf'}})
    assert code == 1 and result['actions'] == [] and double.requests == []
    assert 'method.space_type=linf is not supported by engine lucene' in result['msg']


def test_nmslib_warns(capsys, double):
    code, result = run(capsys, {'hosts': [double.url], 'index': 'docs', 'dimension': 3, 'method': {'engine': 'nmslib'}})
    assert code == 0 and 'nmslib is deprecated' in json.dumps(result['warnings'])


def test_missing_opensearch_py_names_the_library(capsys, monkeypatch):
    monkeypatch.setattr(opensearch_knn_index, 'HAS_OPENSEARCHPY', False)
    code, result = run(capsys, {'index': 'docs', 'dimension': 3})
    assert code == 1
    assert 'Failed to import the required Python library (opensearch-py)' in result['msg']

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: opensearch_knn_index
short_description: Ensure an OpenSearch k-NN index with a knn_vector field
version_added: 0.1.0
description:
  - Creates, updates or deletes an OpenSearch index with C(index.knn=true) and one C(knn_vector) field,
    together with the other mappings and settings given.
  - The whole definition is compared with the existing index, not only its name. Additive mapping
    changes (new properties, new sub-fields, updatable field parameters such as C(ignore_above)) are
    applied with C(PUT /<index>/_mapping); dynamic settings with C(PUT /<index>/_settings).
  - Differences OpenSearch cannot apply in place (vector dimension, method, engine, space type, method
    parameters, C(number_of_shards) and other static settings, a changed field type) make the module
    fail and show the difference, unless O(recreate=on_change).
  - The engine is always sent explicitly (default V(faiss)) because OpenSearch changed its default
    engine in 2.18.
  - Speaks to OpenSearch through the opensearch-py client library.
  - Every parameter is validated before the first request that changes anything.
author:
  - aistack.infra maintainers (@aistack)
extends_documentation_fragment:
  - aistack.infra.opensearch
attributes:
  check_mode:
    support: full
    description: Returns in RV(actions) the requests that would run; none is sent.
  diff_mode:
    support: full
    description: Shows the index settings (those requested) and mappings before and after.
  idempotent:
    support: full
    description: A second run with the same parameters sends no changing request.
options:
  index:
    description:
      - Name of the index (lowercase; not an alias).
    type: str
    required: true
  field:
    description:
      - Name of the C(knn_vector) field.
    type: str
    default: embedding
  dimension:
    description:
      - Number of dimensions of the vectors, 1 to 16000.
      - Required when O(state=present).
    type: int
  method:
    description:
      - The approximate k-NN method of the field.
    type: dict
    default: {}
    suboptions:
      name:
        description:
          - The algorithm. V(ivf) needs a model trained with the k-NN Train API, which this module
            does not manage, so it is refused with an explanation.
        type: str
        choices: [hnsw, ivf]
        default: hnsw
      engine:
        description:
          - The library that implements the method, always sent explicitly.
          - V(lucene) supports V(l2), V(cosinesimil) and V(innerproduct) (2.13+); V(faiss) supports V(l2),
            V(innerproduct) and V(cosinesimil) (2.19+); V(nmslib) (deprecated, refused by OpenSearch 3.0+
            for new indexes) also supports V(l1) and V(linf).
        type: str
        choices: [faiss, lucene, nmslib]
        default: faiss
      space_type:
        description:
          - The distance function.
        type: str
        choices: [l2, cosinesimil, innerproduct, l1, linf]
        default: l2
      parameters:
        description:
          - Method parameters as OpenSearch names them. V(hnsw) takes C(m) (2 to 100) and
            C(ef_construction); with V(faiss) also C(ef_search) and C(encoder) (V(flat) or V(sq) with
            C(type=fp16) and C(clip)).
          - Compared as given, so a parameter left out here but recorded on the index is a difference.
        type: dict
        default: {}
  settings:
    description:
      - Extra index settings, nested (an C(index) dict holding C(number_of_shards)) or flat with dotted keys
        (C(knn.algo_param.ef_search)); the C(index.) prefix is optional.
      - C(index.knn=true) is always set.
      - Only the settings named here are compared. Dynamic ones (C(number_of_replicas),
        C(refresh_interval), C(knn.algo_param.ef_search)...) are updated in place; static ones
        (C(number_of_shards), C(codec), C(analysis.*)...) need O(recreate=on_change).
    type: dict
    default: {}
  mappings:
    description:
      - The rest of the index mappings, as the index API takes them (C(properties), C(dynamic), C(_source), C(_meta)...),
        without the vector field (the module adds it).
      - Properties that exist on the index but are not listed here (for example added by dynamic mapping) are left alone.
    type: dict
    default: {}
  recreate:
    description:
      - What to do when the index differs in a way OpenSearch cannot change in place.
      - V(never) fails and shows the difference.
      - V(on_change) deletes the index and creates it again. B(This deletes every document in the index.)
    type: str
    choices: [never, on_change]
    default: never
  state:
    description:
      - V(present) creates or updates the index, V(absent) deletes it (with its documents).
    type: str
    choices: [present, absent]
    default: present
notes:
  - Tested against a real OpenSearch 3.5 node with the k-NN plugin, with the V(lucene) engine. The V(faiss)
    and V(nmslib) engines are covered by unit tests only (their native libraries are not available to the
    test node); see C(docs/TESTING.md).
seealso:
  - name: OpenSearch methods and engines
    description: Which engine supports which method, space type and parameters.
    link: https://docs.opensearch.org/latest/mappings/supported-field-types/knn-methods-engines/
'''

EXAMPLES = r'''
- name: Index for 768-dimension embeddings, cosine similarity, HNSW on faiss
  aistack.infra.opensearch_knn_index:
    hosts: ["https://search1:9200", "https://search2:9200"]
    user: admin
    password: "{{ opensearch_admin_password }}"
    ca_certs: /etc/ssl/aistack/ca.pem
    index: docs
    field: embedding
    dimension: 768
    method:
      engine: faiss
      space_type: innerproduct
      parameters:
        m: 16
        ef_construction: 128
    settings:
      number_of_shards: 1
      number_of_replicas: 1
    mappings:
      properties:
        title: {type: text}
        source: {type: keyword}

- name: Change a vector dimension, accepting that the index is emptied
  aistack.infra.opensearch_knn_index:
    index: docs
    dimension: 1024
    recreate: on_change

- name: Remove the index
  aistack.infra.opensearch_knn_index:
    index: docs
    state: absent
'''

RETURN = r'''
actions:
  description: The changing HTTP requests, in words (method, path, JSON body); in check mode the ones that would run.
  returned: always
  type: list
  elements: str
  sample: ['PUT /docs {"mappings":{"properties":{"embedding":{"dimension":768,"method":{"engine":"faiss","name":"hnsw",
           "parameters":{},"space_type":"l2"},"type":"knn_vector"}}},"settings":{"index":{"knn":true}}}']
differences:
  description: How the existing index differed from the request; C(change) is V(additive), V(dynamic) or V(immutable).
  returned: always
  type: list
  elements: dict
  sample: [{path: mappings.properties.embedding.dimension, before: 384, after: 768, change: immutable}]
index:
  description:
    - The index after the run, C(settings) (flat) and C(mappings), read back from OpenSearch; in check mode the predicted
      result. Empty when the index is absent.
  returned: always
  type: dict
  sample: {settings: {index.knn: "true", index.number_of_shards: "1"}, mappings: {properties: {}}}
version:
  description: The OpenSearch version of the server.
  returned: always
  type: str
  sample: 2.19.1
diff:
  description: Settings (those requested) and mappings before and after.
  returned: when diff mode is on
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.aistack.infra.plugins.module_utils._opensearch import (
    HAS_OPENSEARCHPY,
    OPENSEARCHPY_IMPORT_ERROR,
    OPENSEARCHPY_LIBRARY,
    OPENSEARCH_REQUIRED_BY,
    OPENSEARCH_REQUIRED_TOGETHER,
    KnnIndexManager,
    OpenSearchClient,
    OpenSearchError,
    opensearch_argument_spec,
)


def main():
    argument_spec = opensearch_argument_spec()
    argument_spec.update(
        index=dict(type='str', required=True),
        field=dict(type='str', default='embedding'),
        dimension=dict(type='int'),
        method=dict(type='dict', default={}, apply_defaults=True, options=dict(
            name=dict(type='str', choices=['hnsw', 'ivf'], default='hnsw'),
            engine=dict(type='str', choices=['faiss', 'lucene', 'nmslib'], default='faiss'),
            space_type=dict(type='str', choices=['l2', 'cosinesimil', 'innerproduct', 'l1', 'linf'], default='l2'),
            parameters=dict(type='dict', default={}),
        )),
        settings=dict(type='dict', default={}),
        mappings=dict(type='dict', default={}),
        recreate=dict(type='str', choices=['never', 'on_change'], default='never'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[('state', 'present', ['dimension'])],
        required_together=OPENSEARCH_REQUIRED_TOGETHER,
        required_by=OPENSEARCH_REQUIRED_BY,
        supports_check_mode=True,
    )
    if not HAS_OPENSEARCHPY:
        module.fail_json(msg=missing_required_lib(OPENSEARCHPY_LIBRARY), exception=OPENSEARCHPY_IMPORT_ERROR)
    manager = None
    try:
        manager = KnnIndexManager(OpenSearchClient.from_params(module.params), module.params,
                                  check_mode=module.check_mode)
        result = manager.run()
    except OpenSearchError as exc:
        module.fail_json(msg=str(exc), actions=manager.actions if manager else [])
    for warning in manager.warnings:
        module.warn(warning)
    if not module._diff:
        result.pop('diff', None)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

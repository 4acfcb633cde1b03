#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: milvus_index
short_description: Ensure the index of a Milvus collection's vector field
version_added: 0.1.0
description:
  - Creates, checks, rebuilds or drops the index of one vector field of a Milvus collection.
  - Idempotency compares the whole definition returned by C(describe_index) (index type, metric
    type and every build parameter, normalised from the strings Milvus returns), never the name alone.
  - Everything is validated before anything is changed - the collection and field exist, the field
    is a vector field, the index type and metric suit that field and the server, and every build
    parameter is known and in range.
  - When the existing index differs, O(recreate=never) fails and shows the difference;
    O(recreate=on_change) releases the collection if it was loaded, drops the index, creates the
    new one, waits for it and loads the collection again.
author:
  - aistack.infra maintainers (@aistack)
extends_documentation_fragment:
  - aistack.infra.milvus
attributes:
  check_mode:
    description: Can run in check mode; returns in RV(actions) the API calls it would make, without making them.
    support: full
  diff_mode:
    description: Returns the index definition before and after.
    support: full
  idempotent:
    description: A second run with the same arguments reports no change.
    support: full
options:
  collection:
    description: Name of the collection.
    type: str
    required: true
  field:
    description:
      - Vector field to index (C(FLOAT_VECTOR), C(BINARY_VECTOR), C(FLOAT16_VECTOR), C(BFLOAT16_VECTOR) or C(SPARSE_FLOAT_VECTOR)).
      - Milvus allows one index per field.
    type: str
    required: true
  index_name:
    description:
      - Name of the index.
      - When not given, Milvus's own default is used (the field name) and an existing index on
        O(field) is accepted whatever its name; when given, the name is part of the definition.
    type: str
  index_type:
    description:
      - Index algorithm. Required with O(state=present).
      - C(DISKANN) and C(GPU_*) types are refused on a lite (embedded) server, which cannot build them;
        C(SCANN) and C(GPU_IVF_*) need Milvus 2.3, C(SPARSE_*), C(GPU_CAGRA) and C(GPU_BRUTE_FORCE) need 2.4.
    type: str
    choices: [FLAT, IVF_FLAT, IVF_SQ8, IVF_PQ, HNSW, DISKANN, SCANN, AUTOINDEX, BIN_FLAT, BIN_IVF_FLAT,
              SPARSE_INVERTED_INDEX, SPARSE_WAND, GPU_IVF_FLAT, GPU_IVF_PQ, GPU_CAGRA, GPU_BRUTE_FORCE]
  metric_type:
    description:
      - Distance metric. Required with O(state=present).
      - C(L2), C(IP), C(COSINE) for float vectors; C(HAMMING), C(JACCARD) for binary vectors
        (C(SUBSTRUCTURE), C(SUPERSTRUCTURE) with C(BIN_FLAT) only); C(IP) for sparse vectors.
    type: str
    choices: [L2, IP, COSINE, HAMMING, JACCARD, SUBSTRUCTURE, SUPERSTRUCTURE]
  params:
    description:
      - Build parameters of O(index_type). Unknown parameters are refused; values are checked against the ranges Milvus 2.3 enforces.
      - C(HNSW) - C(M) (2..2048, required), C(efConstruction) (1..2147483647, required).
      - C(IVF_FLAT), C(IVF_SQ8), C(BIN_IVF_FLAT), C(GPU_IVF_FLAT) - C(nlist) (1..65536, required).
      - C(IVF_PQ), C(GPU_IVF_PQ) - C(nlist) (1..65536, required), C(m) (required, must divide the dimension), C(nbits) (1..64, default 8).
      - C(SCANN) - C(nlist) (1..65536, required), C(with_raw_data) (bool, default true).
      - C(SPARSE_INVERTED_INDEX), C(SPARSE_WAND) - C(drop_ratio_build) (0 <= value < 1).
      - C(GPU_CAGRA) - C(intermediate_graph_degree), C(graph_degree), C(build_algo) (C(IVF_PQ) or C(NN_DESCENT)), C(cache_dataset_on_device).
      - C(FLAT), C(BIN_FLAT), C(DISKANN), C(AUTOINDEX), C(GPU_BRUTE_FORCE) take none.
    type: dict
    default: {}
  recreate:
    description:
      - What to do when an index exists on O(field) with another definition.
      - V(never) fails, showing the difference, and changes nothing.
      - V(on_change) releases the collection if it is loaded, drops the index, creates the requested one,
        waits for it (O(wait_timeout)) and loads the collection again if it was loaded.
    type: str
    choices: [never, on_change]
    default: never
  load:
    description:
      - Load the collection into memory once the index is there.
      - V(false) leaves the load state as it is (a collection that was loaded before a rebuild is loaded again).
      - Cannot be combined with O(state=absent).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for the build to cover every row (C(indexed_rows == total_rows)); V(0) does not wait.
      - Rows of growing (not yet flushed) segments are not part of C(total_rows); Milvus indexes them once sealed.
      - The module fails when the time is up; the server goes on building.
    type: int
    default: 600
  state:
    description:
      - V(present) ensures the index exists with this definition; V(absent) drops it (releasing the collection first if loaded).
      - With V(absent) and O(index_name) given, only an index of that name is dropped.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - name: Milvus index reference
    description: Index types, metrics and build parameters.
    link: https://milvus.io/docs/index.md
"""

EXAMPLES = r"""
- name: HNSW index on the embedding field, loaded for search
  aistack.infra.milvus_index:
    uri: http://127.0.0.1:19530
    token: "{{ milvus_token }}"
    collection: documents
    field: embedding
    index_type: HNSW
    metric_type: COSINE
    params:
      M: 16
      efConstruction: 200
    load: true

- name: Move to IVF_FLAT, rebuilding the existing index (collection stays loaded)
  aistack.infra.milvus_index:
    collection: documents
    field: embedding
    index_type: IVF_FLAT
    metric_type: COSINE
    params:
      nlist: 1024
    recreate: on_change
    wait_timeout: 1800

- name: Binary vectors over TLS with a self-signed certificate
  aistack.infra.milvus_index:
    uri: https://milvus.lab.aistack.test:19530
    server_pem_path: /etc/aistack/milvus/server.pem
    server_name: milvus.lab.aistack.test
    user: root
    password: "{{ milvus_password }}"
    collection: fingerprints
    field: code
    index_type: BIN_IVF_FLAT
    metric_type: HAMMING
    params:
      nlist: 128

- name: Drop the index
  aistack.infra.milvus_index:
    collection: documents
    field: embedding
    state: absent
"""

RETURN = r"""
actions:
  description:
    - The API calls made, in words, in order. In check mode, the calls that would be made.
  returned: always
  type: list
  elements: str
  sample:
    - release_collection(collection='documents')
    - drop_index(collection='documents', index_name='embedding')
    - "create_index(collection='documents', field='embedding', index_name='embedding', index_type='HNSW',
       metric_type='COSINE', params={'M': 16, 'efConstruction': 200})"
    - wait_for_index(collection='documents', index_name='embedding', timeout=600.0)
    - load_collection(collection='documents')
index:
  description:
    - The resulting index (in check mode, the one that would result); empty when there is none.
    - C(state), C(indexed_rows), C(total_rows) and C(pending_index_rows) come from the server after the run.
  returned: always
  type: dict
  sample:
    collection: documents
    field: embedding
    index_name: embedding
    index_type: HNSW
    metric_type: COSINE
    params: {M: 16, efConstruction: 200}
    loaded: true
    state: Finished
    indexed_rows: 20000
    total_rows: 20000
    pending_index_rows: 0
diff:
  description: The index before and after (same keys as RV(index)).
  returned: when diff mode is on
  type: dict
  sample:
    before: {}
    after: {index_name: embedding, index_type: HNSW, metric_type: COSINE, params: {M: 16, efConstruction: 200}}
differences:
  description: With O(recreate=never), each difference between the existing index and the requested one.
  returned: on failure, when the existing index differs
  type: list
  elements: dict
  sample:
    - {key: params.M, current: 16, requested: 32}
"""


from ansible_collections.aistack.infra.plugins.module_utils._milvus import (
    INDEX_TYPE_NAMES,
    METRIC_TYPES,
    MILVUS_CONNECTION_ARGS,
    MilvusIndexManager,
    run_manager_module,
)


def argument_spec():
    spec = dict(MILVUS_CONNECTION_ARGS)
    spec.update(
        collection=dict(type='str', required=True),
        field=dict(type='str', required=True),
        index_name=dict(type='str'),
        index_type=dict(type='str', choices=list(INDEX_TYPE_NAMES)),
        metric_type=dict(type='str', choices=list(METRIC_TYPES)),
        params=dict(type='dict', default={}),
        recreate=dict(type='str', choices=['never', 'on_change'], default='never'),
        load=dict(type='bool', default=False),
        wait_timeout=dict(type='int', default=600),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
    )
    return spec


def main():
    run_manager_module(argument_spec(), MilvusIndexManager, required_if=[('state', 'present', ('index_type', 'metric_type'))])


if __name__ == '__main__':
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgvector_index
short_description: Ensure a pgvector ivfflat or hnsw index, compared by its whole definition
version_added: 0.1.0
description:
  - Creates, rebuilds or drops an C(ivfflat) or C(hnsw) index of the pgvector extension on one column of a
    PostgreSQL table.
  - The existing index is compared by its whole definition (table, column, access method, operator class,
    O(lists) or O(m)/O(ef_construction), partial-index predicate), read from the catalogue
    (C(pg_index), C(pg_class.reloptions), C(pg_opclass), C(pg_get_expr) of the predicate), never by its name alone.
  - A definition that differs either fails with the difference (O(recreate=never)) or is rebuilt
    (O(recreate=on_change)); a rebuild builds the new index under a temporary name first and swaps it in,
    so searches keep an index while it builds.
  - An invalid index left by a failed or interrupted C(CREATE INDEX CONCURRENTLY) is detected
    (C(pg_index.indisvalid = false)) and rebuilt.
  - Sets C(maintenance_work_mem) and C(max_parallel_maintenance_workers) for the build only (its own session),
    sized from the table and the server by default, and returns what it used and how long the build took.
  - Everything is validated (parameters, table, column type and dimension, pgvector version, the predicate)
    before anything is changed.
author:
  - aistack.infra maintainers (@aistack)
extends_documentation_fragment:
  - aistack.infra.postgres
attributes:
  check_mode:
    support: full
    description: Returns in RV(executed_queries) the exact statements that would run, and runs none of them.
  diff_mode:
    support: full
    description: Returns the index definition before and after.
  idempotent:
    support: full
    description: A second run with the same parameters reports no change.
options:
  schema:
    description: Schema of the table (the index is created in the same schema).
    type: str
    default: public
  table:
    description:
      - Table (or materialized view) to index. Required with O(state=present).
    type: str
  column:
    description:
      - Column of type C(vector), C(halfvec), C(sparsevec) or C(bit) to index. Required with O(state=present).
    type: str
  name:
    description:
      - Index name. Defaults to C(<table>_<column>_<method>_idx), cut to 63 bytes.
    type: str
    aliases: [ index ]
  method:
    description: Index access method.
    type: str
    default: hnsw
    choices: [ hnsw, ivfflat ]
  opclass:
    description:
      - Operator class, which sets the distance the index serves.
      - Defaults to the L2 class of the column's type (V(vector_l2_ops) for C(vector), V(halfvec_l2_ops),
        V(sparsevec_l2_ops)) and V(bit_hamming_ops) for C(bit).
      - Must match the column type; C(*_l1_ops), C(sparsevec_*) and V(bit_jaccard_ops) work with hnsw only.
      - C(halfvec_*), C(sparsevec_*), C(bit_*) and V(vector_l1_ops) need pgvector 0.7.0 or later.
    type: str
    choices:
      - vector_l2_ops
      - vector_ip_ops
      - vector_cosine_ops
      - vector_l1_ops
      - halfvec_l2_ops
      - halfvec_ip_ops
      - halfvec_cosine_ops
      - halfvec_l1_ops
      - sparsevec_l2_ops
      - sparsevec_ip_ops
      - sparsevec_cosine_ops
      - sparsevec_l1_ops
      - bit_hamming_ops
      - bit_jaccard_ops
  lists:
    description:
      - Number of inverted lists of an ivfflat index, 1 to 32768 (pgvector's default 100 when omitted).
      - Only with O(method=ivfflat).
    type: int
  m:
    description:
      - Maximum connections per layer of an hnsw index, 2 to 100 (default 16 when omitted).
      - Only with O(method=hnsw).
    type: int
  ef_construction:
    description:
      - Size of the candidate list while building an hnsw index, 4 to 1000 and at least 2 * O(m)
        (default 64 when omitted).
      - Only with O(method=hnsw).
    type: int
  where:
    description:
      - Predicate of a partial index, an SQL boolean expression on the table's columns, without C(WHERE).
      - It is SQL, passed to the server as written (only after the server accepted it on an empty temporary
        copy of the table); do not build it from untrusted input.
    type: str
  concurrently:
    description:
      - Build and drop with C(CONCURRENTLY), so writes to the table are not blocked.
      - Such statements cannot run in a transaction; the module runs them in autocommit mode and, if a
        concurrent build fails, drops the invalid index it left.
      - Not possible on partitioned tables; set V(false) there.
    type: bool
    default: true
  recreate:
    description:
      - What to do when an index with this name exists with a different definition.
      - V(never) fails, showing the difference, and changes nothing.
      - V(on_change) builds the new definition under a temporary name, drops the old index and renames the
        new one.
      - An invalid index is always rebuilt.
    type: str
    default: never
    choices: [ never, on_change ]
  state:
    description:
      - V(present) ensures the index; V(absent) drops it (concurrently when O(concurrently=true)).
      - With V(absent), only ivfflat and hnsw indexes are dropped.
    type: str
    default: present
    choices: [ present, absent ]
  create_extension:
    description: Run C(CREATE EXTENSION IF NOT EXISTS vector) when the extension is missing from the database.
    type: bool
    default: false
  maintenance_work_mem:
    description:
      - C(maintenance_work_mem) for the build, a size such as V(2GB) or V(512MB), or V(auto).
      - V(auto) sizes it so that the build works in memory (rows x bytes per vector, plus the neighbour
        graph for hnsw, plus a margin), at least 64MB and at most a quarter of the server's memory (1GB when
        the server's memory is unknown), and never lower than the server's own setting below that cap.
    type: str
    default: auto
  max_parallel_maintenance_workers:
    description:
      - Parallel workers for the build, an integer from 0, or V(auto).
      - V(auto) uses the server's CPUs minus one, bounded by C(max_parallel_workers) and C(max_worker_processes),
        and 0 for small tables, pgvector versions without parallel builds, or when C(/dev/shm) (local server)
        cannot hold the graph.
      - When workers are used, C(min_parallel_table_scan_size) is set to 0 for the build too, because vectors
        are stored out of line and PostgreSQL would otherwise judge the table too small for workers.
    type: raw
    default: auto
  server_memory_mb:
    description:
      - Memory of the database server in MB, for V(auto) sizing when the server is not local.
      - For a local server (unix socket or loopback address) C(/proc/meminfo) is read instead; for a remote
        one the module reads the server's C(/proc/meminfo) through C(pg_read_file) when the login role is
        allowed to, else it uses conservative bounds.
    type: int
  server_cpus:
    description:
      - CPU count of the database server, for V(auto) sizing when the server is not local.
    type: int
seealso:
  - name: pgvector indexing
    description: The pgvector README on HNSW and IVFFlat indexes and build times.
    link: https://github.com/pgvector/pgvector#indexing
notes:
  - The build settings apply to the module's own session only, which ends with the module.
  - Parallel hnsw builds keep the graph in dynamic shared memory; in containers give C(/dev/shm) at least
    O(maintenance_work_mem).
'''

EXAMPLES = r'''
- name: HNSW index for cosine distance, sized automatically
  aistack.infra.pgvector_index:
    login_host: 127.0.0.1
    login_user: app_admin
    login_password: "{{ vault_pg_password }}"
    db: rag
    table: chunks
    column: embedding
    method: hnsw
    opclass: vector_cosine_ops
    m: 16
    ef_construction: 64
    create_extension: true

- name: Partial IVFFlat index for one tenant, rebuilt when its definition changes
  aistack.infra.pgvector_index:
    db: rag
    table: chunks
    column: embedding
    name: chunks_tenant42_ivf
    method: ivfflat
    lists: 200
    where: "tenant_id = 42"
    recreate: on_change

- name: Half-precision index with explicit build settings
  aistack.infra.pgvector_index:
    db: rag
    table: chunks
    column: embedding_half
    opclass: halfvec_l2_ops
    maintenance_work_mem: 4GB
    max_parallel_maintenance_workers: 3

- name: Drop the index
  aistack.infra.pgvector_index:
    db: rag
    table: chunks
    column: embedding
    method: hnsw
    state: absent
'''

RETURN = r'''
executed_queries:
  description:
    - The statements that changed the server or the session, in order; in check mode the ones that would run.
    - Read-only catalogue queries, and the validation of the definition on a rolled-back temporary table,
      are not listed.
  returned: always
  type: list
  elements: str
  sample:
    - SET maintenance_work_mem = '153MB'
    - SET max_parallel_maintenance_workers = '1'
    - SET min_parallel_table_scan_size = '0'
    - CREATE INDEX CONCURRENTLY "items_embedding_hnsw_idx" ON "public"."items" USING hnsw
      ("embedding" "public"."vector_l2_ops") WITH (m = 16, ef_construction = 64)
index:
  description:
    - The index after the run (in check mode, the definition that would be created, with C(valid) null).
    - Empty after O(state=absent).
  returned: always
  type: dict
  sample:
    name: items_embedding_hnsw_idx
    schema: public
    table: items
    column: embedding
    method: hnsw
    opclass: vector_l2_ops
    params: {m: 16, ef_construction: 64}
    where: null
    indexdef: CREATE INDEX items_embedding_hnsw_idx ON public.items USING hnsw (embedding vector_l2_ops) WITH (m='16', ef_construction='64')
    valid: true
build_settings:
  description:
    - The build settings used (or that would be used) and how they were chosen; empty when nothing was built.
    - C(settings) are the values set for the build; C(source) says for each whether it was C(auto) or C(explicit);
      C(estimated_rows), C(bytes_per_vector) and C(estimated_memory_mb) are the sizing inputs;
      C(server_memory_mb), C(server_cpus) and C(server_facts_from) where the server's size came from;
      C(notes) explain any bound that applied.
  returned: always
  type: dict
  sample:
    maintenance_work_mem: 153MB
    max_parallel_maintenance_workers: 1
    settings: {maintenance_work_mem: 153MB, max_parallel_maintenance_workers: 1, min_parallel_table_scan_size: '0'}
    source: {maintenance_work_mem: auto, max_parallel_maintenance_workers: auto}
    estimated_rows: 30000
    bytes_per_vector: 3080
    estimated_memory_mb: 153
    memory_cap_mb: 6020
    server_memory_mb: 24082
    server_cpus: 2
    server_facts_from: local
    notes: []
build_seconds:
  description: Seconds the C(CREATE INDEX) statement took; null when nothing was built (or in check mode).
  returned: always
  type: float
  sample: 21.4
differences:
  description: What differs between the existing index and the request (key, existing, desired).
  returned: when the index differs and O(recreate=never) (the module then fails)
  type: list
  elements: dict
  sample:
    - {key: opclass, existing: vector_l2_ops, desired: vector_cosine_ops}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aistack.infra.plugins.module_utils._postgres_conn import (
    PostgresConnectionError,
    connect,
    ensure_psycopg2,
    is_local_server,
    postgres_common_argument_spec,
)
from ansible_collections.aistack.infra.plugins.module_utils._pgvector import (
    OPCLASS_NAMES,
    PgvectorIndexError,
    PgvectorIndexManager,
    validate_params,
)


def argument_spec():
    spec = postgres_common_argument_spec()
    spec.update(
        schema=dict(type='str', default='public'),
        table=dict(type='str'),
        column=dict(type='str'),
        name=dict(type='str', aliases=['index']),
        method=dict(type='str', default='hnsw', choices=['hnsw', 'ivfflat']),
        opclass=dict(type='str', choices=OPCLASS_NAMES),
        lists=dict(type='int'),
        m=dict(type='int'),
        ef_construction=dict(type='int'),
        where=dict(type='str'),
        concurrently=dict(type='bool', default=True),
        recreate=dict(type='str', default='never', choices=['never', 'on_change']),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        create_extension=dict(type='bool', default=False),
        maintenance_work_mem=dict(type='str', default='auto'),
        max_parallel_maintenance_workers=dict(type='raw', default='auto'),
        server_memory_mb=dict(type='int'),
        server_cpus=dict(type='int'),
    )
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        mutually_exclusive=[('lists', 'm'), ('lists', 'ef_construction')],
        required_if=[
            ('state', 'present', ('table', 'column')),
            ('state', 'absent', ('name', 'table'), True),
        ],
    )
    ensure_psycopg2(module)
    manager = None
    error = None
    try:
        validate_params(module.params)  # fail on bad input before connecting
        conn = connect(module.params, autocommit=True, application_name='aistack.infra.pgvector_index')
        try:
            manager = PgvectorIndexManager(conn, module.params, check_mode=module.check_mode,
                                           local_server=is_local_server(module.params))
            result = manager.run()
        finally:
            conn.close()
    except PgvectorIndexError as exc:
        error = (exc.msg, dict(exc.details))
    except PostgresConnectionError as exc:
        error = (str(exc), {})
    if error:
        msg, details = error
        if not module._diff:
            details.pop('diff', None)
        module.fail_json(msg=msg, executed_queries=list(manager.executed) if manager else [], **details)

    for warning in result.pop('warnings', []):
        module.warn(warning)
    if not module._diff:
        result.pop('diff', None)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

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
  - Everything is validated (parameters, table, column type and dimension, pgvector version, the predicate,
    the recall sample size against the table's rows, the roles of O(search_defaults_roles)) before anything
    is changed.
  - B(Search quality.) An ivfflat index clusters the rows present when it is built and never moves its
    centroids; built on an empty or nearly empty table it serves poor recall for ever. So the module sizes
    O(lists) from the table (O(lists=auto), the default), B(defers) the build while the table holds too few rows
    to train it (not changed, with a warning saying why and from how many rows it will be built; run the task
    again later), records in the index's comment how many rows it was trained on, and with
    O(retrain_growth_factor) rebuilds it (concurrently, under a temporary name) once the table has grown past
    that factor.
  - It returns the recommended search setting (C(ivfflat.probes) = sqrt(lists), or C(hnsw.ef_search)), can set
    it as the default of the database or of roles (O(search_defaults_database), O(search_defaults_roles)), and
    can measure recall@k against an exact scan (O(recall_check), O(min_recall)).
  - Every decision (lists chosen, deferred, built, re-trained, search setting, recall, defaults) is listed in
    RV(decisions), in check mode too, where nothing is done.
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
      - Number of inverted lists of an ivfflat index, 1 to 32768, or V(auto); omitted means V(auto).
      - V(auto) follows pgvector's advice from the rows the index would hold (non-NULL values matching O(where)),
        counted when the task runs, rows / 1000 up to 1 million rows, sqrt(rows) beyond, bounded to 1..32768. The
        chosen value is returned in RV(training). An existing index is accepted with whatever number of lists
        it was trained with (it is rebuilt only through O(retrain_growth_factor), O(recreate) for other changes, or
        when invalid).
      - Only with O(method=ivfflat); V(auto) with O(method=hnsw) is an error.
    type: raw
  min_rows_per_list:
    description:
      - An ivfflat index is built only when the table holds at least O(lists) x this many rows (pgvector trains
        each list on up to 50 sampled rows). With fewer, the build is B(deferred), not changed, with a warning;
        the next run that finds enough rows builds it.
      - Applies to every ivfflat build (create, O(recreate), re-train, invalid index); an existing index is kept
        while a rebuild is deferred.
    type: int
    default: 50
  retrain_growth_factor:
    description:
      - Rebuild an ivfflat index when the table holds more than this many times the rows the index was trained
        on (recorded in the index's comment at build time), with O(lists) sized again when V(auto). Greater
        than 1, for example V(2).
      - An ivfflat index without that record (built by hand or by an older release) is rebuilt once when this is
        set.
      - The rebuild is built concurrently under a temporary name and swapped in, as for O(recreate=on_change).
      - Unset, an index is never re-trained. Only with O(method=ivfflat).
    type: float
  recall_check:
    description:
      - Measure recall@k of the index after the run, on a snapshot of the table. O(recall_sample_size) rows
        sampled with a fixed seed serve as queries, the index's top O(recall_k) (sequential scans disabled,
        the plan checked to use this index) is compared with an exact scan (index scans disabled) in the same
        C(REPEATABLE READ READ ONLY) transaction, at the recommended search setting. Nothing is written.
      - A row the index returns at the same distance as the exact k-th row counts as found (ties).
      - Each sampled query is answered by an exact scan of the table; on large tables keep the sample small.
      - In check mode the recall of an existing index that would not change is measured; an index that would
        be built is not.
    type: bool
    default: false
  recall_sample_size:
    description:
      - Rows sampled as queries for the recall check; at most the rows of the table (more is an error before
        anything changes). Unset means min(100, rows).
    type: int
  recall_k:
    description:
      - k of recall@k, 1 to 1000; unset means 10. Also the lower bound of the recommended C(hnsw.ef_search).
    type: int
  min_recall:
    description:
      - Lowest acceptable recall@k, in (0, 1]; implies O(recall_check).
      - The search setting is then measured from low to high (C(ivfflat.probes) 1, 2, 4 ... lists;
        C(hnsw.ef_search) k, 2k ... 1000) and the smallest value that reaches O(min_recall) becomes the
        recommendation; when none does, the task fails with the measured figures.
    type: float
  search_defaults_database:
    description:
      - Set the recommended search setting (RV(search_settings)) as the default of the database
        (C(ALTER DATABASE ... SET ivfflat.probes | hnsw.ef_search)), when it differs. New sessions get it.
      - One value per database; with several vector indexes in a database, set it for the index that matters
        or per role.
    type: bool
    default: false
  search_defaults_roles:
    description:
      - Set the recommended search setting as the default of these roles in this database
        (C(ALTER ROLE ... IN DATABASE ... SET)), when it differs. The roles must exist.
    type: list
    elements: str
    default: []
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
  - For ivfflat indexes and for the recall check the module counts the rows on every run (C(count(column)), with
    the predicate of a partial index), a sequential scan of the table's heap; vectors stored out of line are
    not read.
  - The comment of an ivfflat index holds its training record (C(aistack.infra.pgvector_index trained_rows=...));
    the module writes it at every build, replacing any other comment.
  - The recall check answers each sampled query with an exact scan of the table; on tables of millions of rows
    keep O(recall_sample_size) small or run it on demand.
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

- name: IVFFlat index sized from the table, built once there is data, re-trained as the table grows
  aistack.infra.pgvector_index:
    db: rag
    table: documents
    column: embedding
    method: ivfflat
    opclass: vector_cosine_ops
    lists: auto
    retrain_growth_factor: 2
    min_recall: 0.95
    search_defaults_roles: [rag_app]
  register: ivf

- name: Show what it decided
  ansible.builtin.debug:
    msg: "{{ ivf.decisions }} recall@10 {{ ivf.recall_at_k }} with {{ ivf.search_settings }}"

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
deferred:
  description:
    - True when an ivfflat build was deferred because the table holds fewer than O(lists) x O(min_rows_per_list)
      rows; the task is then not changed and warns with the number of rows needed.
  returned: always
  type: bool
  sample: false
decisions:
  description: Every decision of the run, in words, in check mode too (where nothing is done).
  returned: always
  type: list
  elements: str
  sample:
    - "lists: auto chose 20 for 20000 rows (rows / 1000, bounded to 1..32768)"
    - "create: index public.documents_embedding_ivfflat_idx does not exist"
    - "recall: recall@10 = 0.9980 at ivfflat.probes = 1 (100 sampled rows as queries, exact scan in the same transaction)"
    - "search: ivfflat.probes = 1 (measured: the smallest value tried reaching min_recall 0.95)"
training:
  description:
    - For ivfflat, the training figures. C(rows) counted now; C(lists) the lists of the index (the chosen
      value for V(auto)); C(lists_source) V(auto) or V(explicit); C(rows_needed) for a build; C(trained_rows)
      the rows the index was trained on (from its comment; null when unknown); C(retrain_at_rows) when
      O(retrain_growth_factor) rebuilds it. Empty for hnsw.
  returned: always
  type: dict
  sample: {rows: 20000, lists: 20, lists_source: auto, min_rows_per_list: 50, rows_needed: 1000,
           trained_rows: 20000, retrain_growth_factor: 2.0, retrain_at_rows: 40000}
search_settings:
  description:
    - The recommended search setting for the index (C(ivfflat.probes) or C(hnsw.ef_search)) and its C(source);
      C(defaults) lists the database/role defaults set (or already set). Empty when there is no index.
  returned: always
  type: dict
  sample: {ivfflat.probes: 5, source: sqrt(lists) = sqrt(20),
           defaults: [{database: rag, role: null, setting: ivfflat.probes, value: 5, before: null, changed: true}]}
recall:
  description:
    - The recall check (O(recall_check) or O(min_recall)), with C(k), C(sample_size), C(rows), C(setting), the C(value)
      measured last, C(recall_at_k) there, and every value C(tried). C(measured) false with a C(reason) when
      it could not run (no index, check mode before a build). Empty when not asked for.
  returned: always
  type: dict
  sample: {measured: true, k: 10, sample_size: 100, rows: 20000, setting: ivfflat.probes, value: 1,
           recall_at_k: 0.998, tried: [{value: 1, recall_at_k: 0.998}], min_recall: 0.95}
recall_at_k:
  description: The measured recall@k (see RV(recall)); null when not measured.
  returned: always
  type: float
  sample: 0.998
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
        lists=dict(type='raw'),
        min_rows_per_list=dict(type='int', default=50),
        retrain_growth_factor=dict(type='float'),
        recall_check=dict(type='bool', default=False),
        recall_sample_size=dict(type='int'),
        recall_k=dict(type='int'),
        min_recall=dict(type='float'),
        search_defaults_database=dict(type='bool', default=False),
        search_defaults_roles=dict(type='list', elements='str', default=[]),
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

"""Unit tests for plugins/module_utils/_pgvector.py: validation, comparison, SQL rendering, build sizing,
and the manager's decisions (against a scripted catalogue, no server)."""
import pytest

from ansible_collections.aistack.infra.plugins.module_utils import _pgvector as pv
from ansible_collections.aistack.infra.plugins.module_utils._pgvector import (
    PgvectorIndexError,
    PgvectorIndexManager,
    check_against_server,
    compare_definitions,
    derive_index_name,
    estimate_build_memory_bytes,
    existing_definition,
    format_size_kb,
    interpolate,
    normalize_predicate_text,
    parse_reloptions,
    parse_size_kb,
    parse_version,
    plan_build_settings,
    quote_ident,
    read_local_host_facts,
    render_create,
    render_drop,
    render_rename,
    render_set,
    validate_params,
)


def params(**kw):
    base = dict(state='present', schema='public', table='items', column='embedding', name=None, method='hnsw',
                opclass=None, lists=None, m=None, ef_construction=None, where=None, concurrently=True,
                recreate='never', create_extension=False, maintenance_work_mem='auto',
                max_parallel_maintenance_workers='auto', server_memory_mb=None, server_cpus=None)
    base.update(kw)
    return base


def fails(match, **kw):
    with pytest.raises(PgvectorIndexError) as exc:
        validate_params(params(**kw))
    assert match in exc.value.msg
    return exc.value.msg


# --- validate_params ------------------------------------------------------------------------

def test_defaults_hnsw():
    req = validate_params(params())
    assert req['name'] == 'items_embedding_hnsw_idx'
    assert req['params'] == {'m': 16, 'ef_construction': 64}
    assert req['maintenance_work_mem_kb'] is None and req['workers'] is None


def test_defaults_ivfflat():
    req = validate_params(params(method='ivfflat'))
    assert req['name'] == 'items_embedding_ivfflat_idx'
    assert req['params'] == {'lists': 100}


@pytest.mark.parametrize('kw,match', [
    (dict(method='ivfflat', lists=0), 'lists: 0 is out of range; allowed values: 1..32768'),
    (dict(method='ivfflat', lists=32769), 'lists: 32769 is out of range; allowed values: 1..32768'),
    (dict(m=1), 'm: 1 is out of range; allowed values: 2..100'),
    (dict(m=101), 'm: 101 is out of range; allowed values: 2..100'),
    (dict(ef_construction=3), 'ef_construction: 3 is out of range; allowed values: 4..1000'),
    (dict(m=32, ef_construction=63), 'ef_construction: 63 is too small for m=32; it must be at least 2 * m = 64'),
    (dict(m=40), 'ef_construction: 64 (the default) is too small for m=40'),
    (dict(lists=10), 'lists: applies to method=ivfflat only; method=hnsw takes: m, ef_construction'),
    (dict(method='ivfflat', m=16), 'm: applies to method=hnsw only; method=ivfflat takes: lists'),
    (dict(opclass='vector_euclid_ops'), "opclass: 'vector_euclid_ops' is not a pgvector operator class; allowed"),
    (dict(method='ivfflat', opclass='vector_l1_ops'), 'opclass: vector_l1_ops cannot be used with method=ivfflat'),
    (dict(method='ivfflat', opclass='sparsevec_l2_ops'), 'allowed for sparsevec columns with ivfflat: none'),
    (dict(method='ivfflat', opclass='bit_jaccard_ops'), 'allowed for bit columns with ivfflat: bit_hamming_ops'),
    (dict(method='annoy'), "method: 'annoy' is not supported; allowed values: hnsw, ivfflat"),
    (dict(name='x' * 64), "name: 'xxxx"),
    (dict(table=None), 'table is required when state=present'),
    (dict(column=None, name='idx'), 'column is required when state=present'),
    (dict(state='absent', table=None, column=None), 'state=absent needs name'),
    (dict(where='WHERE a = 1'), 'where: give the predicate without the WHERE keyword'),
    (dict(where='a = 1; DROP TABLE items'), 'where: one boolean expression is expected'),
    (dict(maintenance_work_mem='lots'), "maintenance_work_mem: 'lots' is not a size; use 'auto' or a number"),
    (dict(maintenance_work_mem='512kB'), "maintenance_work_mem: '512kB' is below PostgreSQL's minimum of 1MB"),
    (dict(max_parallel_maintenance_workers='many'), "max_parallel_maintenance_workers: 'many' is not valid"),
    (dict(max_parallel_maintenance_workers=-1), "max_parallel_maintenance_workers: -1 is not valid"),
    (dict(max_parallel_maintenance_workers=True), "max_parallel_maintenance_workers: True is not valid"),
    (dict(server_memory_mb=0), 'server_memory_mb: 0 must be a positive integer'),
])
def test_bad_parameters_name_the_parameter(kw, match):
    fails(match, **kw)


def test_unknown_opclass_lists_every_allowed_value():
    msg = fails('opclass', opclass='nope')
    for name in pv.OPCLASS_NAMES:
        assert name in msg


def test_where_semicolon_inside_literal_is_fine():
    assert validate_params(params(where="title <> 'a;b'"))['where'] == "title <> 'a;b'"


def test_explicit_build_settings_parse():
    req = validate_params(params(maintenance_work_mem='2GB', max_parallel_maintenance_workers='3'))
    assert req['maintenance_work_mem_kb'] == 2 * 1024 * 1024 and req['workers'] == 3
    assert validate_params(params(max_parallel_maintenance_workers=0))['workers'] == 0


def test_derived_name_is_cut_to_63_bytes():
    name = derive_index_name('t' * 40, 'c' * 30, 'hnsw')
    assert len(name.encode()) == 63 and name.startswith('t' * 40)
    assert derive_index_name('items', 'embedding', 'ivfflat') == 'items_embedding_ivfflat_idx'


# --- checks against the server's answers ------------------------------------------------------

VEC = {'type': 'vector', 'format': 'vector(768)', 'dims': 768}


def test_default_opclass_follows_column_type():
    req = validate_params(params())
    assert check_against_server(req, VEC, (0, 8, 0)) == 'vector_l2_ops'
    assert check_against_server(req, {'type': 'halfvec', 'format': 'halfvec(8)', 'dims': 8}, (0, 8, 0)) == \
        'halfvec_l2_ops'
    assert check_against_server(req, {'type': 'bit', 'format': 'bit(64)', 'dims': 64}, (0, 8, 0)) == \
        'bit_hamming_ops'
    assert check_against_server(req, {'type': 'sparsevec', 'format': 'sparsevec', 'dims': None}, (0, 8, 0)) == \
        'sparsevec_l2_ops'


@pytest.mark.parametrize('req_kw,column,version,match', [
    ({}, {'type': 'text', 'format': 'text'}, (0, 8, 0), 'column: public.items.embedding is of type text, not a pgvector'),
    (dict(opclass='vector_cosine_ops'), {'type': 'halfvec', 'format': 'halfvec(8)', 'dims': 8}, (0, 8, 0),
     'opclass: vector_cosine_ops is for vector columns but public.items.embedding is halfvec(8); allowed with '
     'method=hnsw: halfvec_cosine_ops, halfvec_ip_ops, halfvec_l1_ops, halfvec_l2_ops'),
    (dict(method='ivfflat'), {'type': 'sparsevec', 'format': 'sparsevec(100)', 'dims': 100}, (0, 8, 0),
     'allowed for sparsevec with ivfflat: none (use method=hnsw)'),
    ({}, {'type': 'vector', 'format': 'vector(2001)', 'dims': 2001}, (0, 8, 0),
     'column: public.items.embedding has 2001 dimensions; hnsw indexes on vector columns allow at most 2000'),
    ({}, {'type': 'halfvec', 'format': 'halfvec(4001)', 'dims': 4001}, (0, 8, 0), 'allow at most 4000'),
    ({}, {'type': 'bit', 'format': 'bit(64001)', 'dims': 64001}, (0, 8, 0), 'allow at most 64000'),
    ({}, {'type': 'vector', 'format': 'vector', 'dims': None}, (0, 8, 0), 'has no fixed dimension'),
    ({}, VEC, (0, 4, 4), 'pgvector 0.4.4 is installed in this database; method=hnsw needs pgvector 0.5.0 or later'),
    (dict(method='ivfflat'), {'type': 'halfvec', 'format': 'halfvec(8)', 'dims': 8}, (0, 6, 2),
     'halfvec columns needs pgvector 0.7.0 or later'),
    (dict(opclass='vector_l1_ops'), VEC, (0, 6, 0), 'opclass vector_l1_ops with hnsw needs pgvector 0.7.0'),
])
def test_server_side_checks(req_kw, column, version, match):
    req = validate_params(params(**req_kw))
    with pytest.raises(PgvectorIndexError) as exc:
        check_against_server(req, column, version)
    assert match in exc.value.msg


def test_dimension_limits_are_inclusive():
    req = validate_params(params())
    assert check_against_server(req, {'type': 'vector', 'format': 'vector(2000)', 'dims': 2000}, (0, 8, 0))
    assert check_against_server(validate_params(params(method='ivfflat')), VEC, (0, 4, 0)) == 'vector_l2_ops'


# --- definitions and comparison ---------------------------------------------------------------

ROW = {
    'name': 'items_embedding_hnsw_idx', 'schema': 'public', 'table': 'items', 'method': 'hnsw', 'valid': True,
    'unique': False, 'has_expressions': False, 'predicate': None, 'reloptions': None,
    'columns': ['embedding'], 'opclasses': ['vector_l2_ops'], 'indexdef': 'CREATE INDEX ...',
}


def desired(**kw):
    req = validate_params(params(**kw))
    return pv.desired_definition(req, req['opclass'] or 'vector_l2_ops', req['where'])


def test_missing_reloptions_mean_pgvector_defaults():
    existing = existing_definition(ROW)
    assert existing['params'] == {'m': 16, 'ef_construction': 64}
    assert compare_definitions(existing, desired()) == []


def test_every_part_of_the_definition_is_compared():
    existing = existing_definition(dict(ROW, reloptions=['m=16', 'ef_construction=64']))
    cases = {
        'opclass': desired(opclass='vector_cosine_ops'),
        'params': desired(m=24, ef_construction=64),
        'where': desired(where='cat = 1'),
        'method': dict(desired(method='ivfflat'), name='items_embedding_hnsw_idx'),
        'column': dict(desired(), column='other'),
        'table': dict(desired(), table='other'),
    }
    for key, want in cases.items():
        diffs = compare_definitions(existing, want)
        assert key in [d['key'] for d in diffs], key


def test_same_name_is_not_enough():
    """An index with the requested name but another definition is a difference, not a match."""
    existing = existing_definition(dict(ROW, opclasses=['vector_ip_ops'], reloptions=['m=8']))
    diffs = compare_definitions(existing, desired())
    assert {d['key'] for d in diffs} == {'opclass', 'params'}
    assert pv.format_differences(diffs) == ("opclass: 'vector_ip_ops' -> 'vector_l2_ops'; params: "
                                            "{'m': 8, 'ef_construction': 64} -> {'m': 16, 'ef_construction': 64}")


def test_unique_and_expression_indexes_differ():
    assert 'unique' in [d['key'] for d in compare_definitions(existing_definition(dict(ROW, unique=True)), desired())]
    expr = existing_definition(dict(ROW, has_expressions=True, columns=[None]))
    assert 'columns' in [d['key'] for d in compare_definitions(expr, desired())]


def test_predicates_compare_after_normalisation():
    existing = existing_definition(dict(ROW, predicate='((cat = 3) AND (title IS NOT NULL))'))
    assert compare_definitions(existing, desired(where='(cat = 3) AND (title IS NOT NULL)')) == []
    assert normalize_predicate_text('  ((a = 1)) ') == 'a = 1'
    assert normalize_predicate_text('(a = 1) OR (b = 2)') == '(a = 1) OR (b = 2)'
    assert normalize_predicate_text(None) is None


def test_parse_reloptions_and_versions():
    assert parse_reloptions(['lists=100']) == {'lists': 100}
    assert parse_reloptions(None) == {}
    assert parse_version('0.8.1') == (0, 8, 1) and parse_version('0.5.0-dev') == (0, 5, 0)
    assert parse_version('1') == (1, 0, 0)


# --- SQL rendering --------------------------------------------------------------------------

def test_identifiers_are_quoted():
    assert quote_ident('items') == '"items"'
    assert quote_ident('we"ird') == '"we""ird"'
    with pytest.raises(PgvectorIndexError):
        quote_ident('')


def test_render_create_hnsw_binds_values():
    sql, values = render_create(desired(m=8, ef_construction=32), 'public')
    assert sql == ('CREATE INDEX CONCURRENTLY "items_embedding_hnsw_idx" ON "public"."items" USING hnsw '
                   '("embedding" "public"."vector_l2_ops") WITH (m = %s, ef_construction = %s)')
    assert values == [8, 32]


def test_render_create_ivfflat_partial_plain():
    defn = desired(method='ivfflat', lists=7, opclass='vector_cosine_ops', where="title LIKE 'a%'")
    sql, values = render_create(defn, None, concurrently=False, index_name='tmp"x')
    assert sql.startswith('CREATE INDEX "tmp""x" ON "public"."items" USING ivfflat ("embedding" "vector_cosine_ops")')
    assert sql.endswith("WITH (lists = %s) WHERE title LIKE 'a%%'")
    assert interpolate(sql, values).endswith("WITH (lists = 7) WHERE title LIKE 'a%'")


def test_render_drop_rename_set():
    assert render_drop('public', 'i') == ('DROP INDEX CONCURRENTLY "public"."i"', [])
    assert render_drop('s', 'i', concurrently=False, if_exists=True) == ('DROP INDEX IF EXISTS "s"."i"', [])
    assert render_rename('public', 'a_aisnew', 'a') == ('ALTER INDEX "public"."a_aisnew" RENAME TO "a"', [])
    assert render_set('maintenance_work_mem', '2GB') == ('SET maintenance_work_mem = %s', ['2GB'])
    assert render_set('max_parallel_maintenance_workers', 1, local=True) == \
        ('SET LOCAL max_parallel_maintenance_workers = %s', ['1'])
    with pytest.raises(PgvectorIndexError):
        render_set('work_mem; DROP TABLE x', '1')
    assert interpolate(*render_set('maintenance_work_mem', "it's")) == "SET maintenance_work_mem = 'it''s'"


def test_sizes():
    assert parse_size_kb('2GB') == 2097152 and parse_size_kb('512mb') == 524288 and parse_size_kb('1024') == 1024
    assert parse_size_kb('1TB') == 1024 ** 3 and parse_size_kb('2048 B') == 2
    assert format_size_kb(2097152) == '2GB' and format_size_kb(163840) == '160MB' and format_size_kb(1000) == '1000kB'


# --- build settings -------------------------------------------------------------------------

SERVER = {'maintenance_work_mem_kb': 65536, 'max_worker_processes': 8, 'max_parallel_workers': 8,
          'max_parallel_maintenance_workers': 2, 'dynamic_shared_memory_type': 'posix'}
LOCAL_2CPU = {'memory_mb': 24000, 'cpus': 2, 'shm_free_mb': 12000, 'source': 'local'}


def plan(rows=30000, dims=768, method='hnsw', mwm=None, workers=None, server=None, host=None, version=(0, 8, 1),
         index_params=None):
    return plan_build_settings(method, rows, 8 + 4 * dims, index_params or {'m': 16, 'ef_construction': 64},
                               version, mwm, workers, server or SERVER, host or LOCAL_2CPU)


def test_hnsw_estimate_matches_measured_graph_size():
    # pgvector 0.8 filled 64MB after 17707 768-dim vectors (m=16): 3.79kB each.
    per_vector = (estimate_build_memory_bytes('hnsw', 100000, 3080, {'m': 16}) - 16 * pv.MB) / 1.25 / 100000
    assert 3700 < per_vector < 3900


def test_auto_keeps_the_graph_in_memory_with_one_worker_on_two_cores():
    settings, info = plan()
    assert dict(settings) == {'maintenance_work_mem': '153MB', 'max_parallel_maintenance_workers': 1,
                              'min_parallel_table_scan_size': '0'}
    assert info['estimated_memory_mb'] == 153 and info['estimated_rows'] == 30000
    assert info['source'] == {'maintenance_work_mem': 'auto', 'max_parallel_maintenance_workers': 'auto'}
    # 64MB (the default) would not hold it: that is what makes the default build slow.
    assert info['estimated_memory_mb'] > 64


def test_auto_is_bounded_by_a_quarter_of_memory_and_floored_at_64mb():
    settings, info = plan(rows=10 ** 7, host=dict(LOCAL_2CPU, memory_mb=8000))
    assert dict(settings)['maintenance_work_mem'] == '2000MB'
    assert any('capped at 2000MB' in n for n in info['notes'])
    small, _ = plan(rows=10)
    assert dict(small)['maintenance_work_mem'] == '64MB'
    assert dict(small)['max_parallel_maintenance_workers'] == 0


def test_auto_never_lowers_the_servers_own_setting():
    settings, _ = plan(rows=100, server=dict(SERVER, maintenance_work_mem_kb=1024 * 1024))
    assert dict(settings)['maintenance_work_mem'] == '1GB'


def test_workers_bounded_by_cpus_and_server_pools():
    assert dict(plan(host=dict(LOCAL_2CPU, cpus=16))[0])['max_parallel_maintenance_workers'] == 8
    assert dict(plan(host=dict(LOCAL_2CPU, cpus=16), server=dict(SERVER, max_parallel_workers=3))[0])[
        'max_parallel_maintenance_workers'] == 3
    assert dict(plan(host=dict(LOCAL_2CPU, cpus=1))[0])['max_parallel_maintenance_workers'] == 0


def test_no_parallel_hnsw_before_pgvector_060():
    settings, info = plan(version=(0, 5, 1))
    assert dict(settings)['max_parallel_maintenance_workers'] == 0
    assert 'min_parallel_table_scan_size' not in dict(settings)
    assert any('parallel builds need 0.6.0' in n for n in info['notes'])


def test_small_dev_shm_means_serial_build():
    settings, info = plan(host=dict(LOCAL_2CPU, shm_free_mb=64))
    assert dict(settings)['max_parallel_maintenance_workers'] == 0
    assert any('/dev/shm' in n for n in info['notes'])


def test_remote_unknown_server_is_conservative():
    settings, info = plan(rows=10 ** 7, host={'memory_mb': None, 'cpus': None, 'shm_free_mb': None, 'source': None})
    assert dict(settings)['maintenance_work_mem'] == '1GB'
    assert dict(settings)['max_parallel_maintenance_workers'] == 1
    assert any('server memory unknown' in n for n in info['notes'])


def test_explicit_values_are_used_as_given():
    settings, info = plan(mwm=2 * 1024 * 1024, workers=0)
    assert settings == [('maintenance_work_mem', '2GB'), ('max_parallel_maintenance_workers', 0)]
    assert info['source'] == {'maintenance_work_mem': 'explicit', 'max_parallel_maintenance_workers': 'explicit'}
    _, info = plan(workers=12)
    assert any('launches at most 8' in n for n in info['notes'])


def test_each_participant_gets_32mb_as_postgres_requires():
    settings, _ = plan(rows=20000, dims=256, host=dict(LOCAL_2CPU, cpus=8))
    mwm_mb = parse_size_kb(dict(settings)['maintenance_work_mem']) // 1024
    assert mwm_mb // (dict(settings)['max_parallel_maintenance_workers'] + 1) >= 32


def test_ivfflat_estimate():
    settings, info = plan(method='ivfflat', index_params={'lists': 100})
    assert info['estimated_memory_mb'] == 115
    assert dict(settings)['max_parallel_maintenance_workers'] == 1


def test_local_host_facts(tmp_path):
    meminfo = tmp_path / 'meminfo'
    meminfo.write_text('MemTotal:       24680000 kB\nMemFree:        1 kB\n')
    facts = read_local_host_facts(str(meminfo), str(tmp_path))
    assert facts['memory_mb'] == 24101 and facts['cpus'] >= 1 and facts['shm_free_mb'] > 0
    assert read_local_host_facts(str(tmp_path / 'missing'), str(tmp_path / 'missing'))['memory_mb'] is None
    assert pv.parse_cpuinfo_count('processor\t: 0\nx\nprocessor\t: 1\n') == 2


# --- the manager's decisions, against a scripted catalogue --------------------------------------

class FakeCursor:
    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql, values=None):
        self.conn.ran.append(interpolate(sql, values))
        if self.conn.fail_on and self.conn.fail_on in sql:
            raise FakeError('boom')

    def mogrify(self, sql, values=None):
        return interpolate(sql, values).encode()

    def close(self):
        pass


class FakeError(Exception):
    pass


class FakeConn:
    def __init__(self, fail_on=None):
        self.ran = []
        self.autocommit = True
        self.fail_on = fail_on
        self.commits = self.rollbacks = 0

    def cursor(self):
        return FakeCursor(self)

    def commit(self):
        self.commits += 1

    def rollback(self):
        self.rollbacks += 1


class ScriptedManager(PgvectorIndexManager):
    """The manager with its catalogue reads replaced by fixed answers."""
    extension = {'installed': True, 'version': (0, 8, 1), 'schema': 'public'}
    column = VEC
    relkind = 'r'
    rows = 30000

    def __init__(self, conn, p, index_rows=None, **kw):
        self.index_rows = index_rows or {}
        super().__init__(conn, p, host_facts=LOCAL_2CPU, **kw)

    def read_extension(self):
        return dict(self.extension)

    def read_table(self):
        return {'oid': 1, 'relkind': self.relkind, 'reltuples': self.rows, 'column': self.column}

    def read_index(self, schema, name):
        return self.index_rows.get(name)

    def normalize_where(self, defn, opclass_schema):
        return defn.get('where')

    def server_settings(self):
        return dict(SERVER)


@pytest.fixture(autouse=True)
def fake_psycopg2_error(monkeypatch):
    class Psycopg2:
        Error = FakeError
    monkeypatch.setattr(pv, 'psycopg2', Psycopg2)


EXISTING = dict(ROW, relkind='i', table_schema='public', reloptions=['m=16', 'ef_construction=64'])


def test_manager_creates_concurrently_in_autocommit():
    conn = FakeConn()
    result = ScriptedManager(conn, params()).run()
    assert result['changed'] is True
    assert result['executed_queries'] == [
        "SET maintenance_work_mem = '153MB'",
        "SET max_parallel_maintenance_workers = '1'",
        "SET min_parallel_table_scan_size = '0'",
        'CREATE INDEX CONCURRENTLY "items_embedding_hnsw_idx" ON "public"."items" USING hnsw ("embedding" '
        '"public"."vector_l2_ops") WITH (m = 16, ef_construction = 64)']
    assert conn.ran == result['executed_queries'] and conn.commits == 0
    assert result['build_seconds'] is not None


def test_manager_check_mode_runs_nothing():
    conn = FakeConn()
    result = ScriptedManager(conn, params(), check_mode=True).run()
    assert result['changed'] is True and len(result['executed_queries']) == 4
    assert conn.ran == []
    assert result['index']['valid'] is None and result['index']['indexdef'].startswith('CREATE INDEX "items_')


def test_manager_unchanged_when_whole_definition_matches():
    conn = FakeConn()
    result = ScriptedManager(conn, params(), index_rows={'items_embedding_hnsw_idx': EXISTING}).run()
    assert result['changed'] is False and result['executed_queries'] == [] and conn.ran == []


def test_manager_never_fails_with_the_difference():
    conn = FakeConn()
    with pytest.raises(PgvectorIndexError) as exc:
        ScriptedManager(conn, params(opclass='vector_cosine_ops'),
                        index_rows={'items_embedding_hnsw_idx': EXISTING}).run()
    assert "opclass: 'vector_l2_ops' -> 'vector_cosine_ops'" in exc.value.msg
    assert exc.value.details['differences'] == [{'key': 'opclass', 'existing': 'vector_l2_ops',
                                                 'desired': 'vector_cosine_ops'}]
    assert exc.value.details['diff']['after']['opclass'] == 'vector_cosine_ops'
    assert conn.ran == []


def test_manager_on_change_without_concurrently_is_one_transaction():
    conn = FakeConn()
    result = ScriptedManager(conn, params(m=8, ef_construction=32, recreate='on_change', concurrently=False),
                             index_rows={'items_embedding_hnsw_idx': EXISTING}).run()
    assert result['executed_queries'][0] == "SET LOCAL maintenance_work_mem = '144MB'"
    assert result['executed_queries'][-3:] == [
        'CREATE INDEX "items_embedding_hnsw_idx_aisnew" ON "public"."items" USING hnsw ("embedding" '
        '"public"."vector_l2_ops") WITH (m = 8, ef_construction = 32)',
        'DROP INDEX "public"."items_embedding_hnsw_idx"',
        'ALTER INDEX "public"."items_embedding_hnsw_idx_aisnew" RENAME TO "items_embedding_hnsw_idx"']
    assert conn.commits == 1 and conn.autocommit is True


def test_manager_failed_transaction_rolls_back():
    conn = FakeConn(fail_on='CREATE INDEX')
    with pytest.raises(PgvectorIndexError) as exc:
        ScriptedManager(conn, params(concurrently=False)).run()
    assert 'the transaction was rolled back, nothing was changed' in exc.value.msg
    assert conn.rollbacks == 1 and conn.commits == 0


def test_manager_rebuilds_invalid_index():
    conn = FakeConn()
    mgr = ScriptedManager(conn, params(), index_rows={'items_embedding_hnsw_idx': dict(EXISTING, valid=False)})
    result = mgr.run()
    assert result['executed_queries'][-2] == 'DROP INDEX CONCURRENTLY "public"."items_embedding_hnsw_idx"'
    assert result['executed_queries'][-1].startswith('CREATE INDEX CONCURRENTLY "items_embedding_hnsw_idx" ')
    assert any('invalid' in w for w in result['warnings'])


@pytest.mark.parametrize('row,match', [
    (dict(EXISTING, relkind='r'), 'already exists and is not an index'),
    (dict(EXISTING, table='other'), 'already exists on table public.other'),
    (dict(EXISTING, method='btree'), 'already exists as a btree index'),
])
def test_manager_refuses_foreign_objects_with_the_name(row, match):
    with pytest.raises(PgvectorIndexError) as exc:
        ScriptedManager(FakeConn(), params(recreate='on_change'), index_rows={'items_embedding_hnsw_idx': row}).run()
    assert match in exc.value.msg


def test_manager_partitioned_table_needs_concurrently_false():
    mgr = ScriptedManager(FakeConn(), params())
    mgr.relkind = 'p'
    with pytest.raises(PgvectorIndexError) as exc:
        mgr.run()
    assert 'concurrently: public.items is partitioned' in exc.value.msg


def test_manager_missing_extension():
    mgr = ScriptedManager(FakeConn(), params())
    mgr.extension = {'installed': False, 'version': (0, 8, 1), 'available': True, 'schema': 'public'}
    with pytest.raises(PgvectorIndexError) as exc:
        mgr.run()
    assert 'set create_extension: true' in exc.value.msg
    mgr = ScriptedManager(FakeConn(), params(create_extension=True), check_mode=True)
    mgr.extension = {'installed': False, 'version': (0, 8, 1), 'available': True, 'schema': 'public'}
    assert mgr.run()['executed_queries'][0] == 'CREATE EXTENSION IF NOT EXISTS vector'


def test_manager_absent():
    conn = FakeConn()
    result = ScriptedManager(conn, params(state='absent'), index_rows={'items_embedding_hnsw_idx': EXISTING}).run()
    assert result['changed'] is True
    assert result['executed_queries'] == ['DROP INDEX CONCURRENTLY "public"."items_embedding_hnsw_idx"']
    assert result['diff']['before']['name'] == 'items_embedding_hnsw_idx' and result['diff']['after'] == {}
    assert ScriptedManager(FakeConn(), params(state='absent')).run()['changed'] is False
    with pytest.raises(PgvectorIndexError) as exc:
        ScriptedManager(FakeConn(), params(state='absent', name='items_pkey', table=None, column=None),
                        index_rows={'items_pkey': dict(EXISTING, name='items_pkey', method='btree')}).run()
    assert 'is a btree index, not ivfflat/hnsw' in exc.value.msg


def test_manager_recreate_drops_its_own_invalid_leftover_first():
    leftover = dict(EXISTING, name='items_embedding_hnsw_idx_aisnew', valid=False)
    result = ScriptedManager(FakeConn(), params(m=8, ef_construction=32, recreate='on_change'),
                             index_rows={'items_embedding_hnsw_idx': EXISTING,
                                         'items_embedding_hnsw_idx_aisnew': leftover}).run()
    assert 'DROP INDEX CONCURRENTLY "public"."items_embedding_hnsw_idx_aisnew"' in result['executed_queries']
    with pytest.raises(PgvectorIndexError) as exc:
        ScriptedManager(FakeConn(), params(m=8, ef_construction=32, recreate='on_change'),
                        index_rows={'items_embedding_hnsw_idx': EXISTING,
                                    'items_embedding_hnsw_idx_aisnew': dict(leftover, valid=True)}).run()
    assert 'temporary name public.items_embedding_hnsw_idx_aisnew used to rebuild the index is taken' in exc.value.msg


# --- search quality: lists auto, deferral, re-training, search settings, recall -------------------------------

@pytest.mark.parametrize('rows,lists', [(0, 1), (999, 1), (1999, 1), (20000, 20), (1000000, 1000),
                                        (4000000, 2000), (10 ** 10, 32768)])
def test_auto_lists_follows_pgvector_and_is_bounded(rows, lists):
    assert pv.auto_lists(rows) == lists


def test_recommended_search_settings():
    assert [pv.recommended_probes(n) for n in (1, 3, 20, 100, 1000)] == [1, 2, 5, 10, 32]
    assert [pv.recommended_ef_search(k) for k in (1, 10, 40, 100, 5000)] == [40, 40, 40, 100, 1000]
    assert pv.search_candidates('ivfflat', 20, 10, False) == [5]
    assert pv.search_candidates('ivfflat', 12, 10, True) == [1, 2, 4, 8, 12]
    assert pv.search_candidates('ivfflat', 1, 10, True) == [1]
    assert pv.search_candidates('hnsw', 1, 10, False) == [40]
    assert pv.search_candidates('hnsw', 1, 10, True) == [10, 20, 40, 80, 160, 320, 640, 1000]


def test_lists_auto_is_the_ivfflat_default():
    assert validate_params(params(method='ivfflat'))['lists_auto'] is True
    assert validate_params(params(method='ivfflat', lists='AUTO'))['lists_auto'] is True
    req = validate_params(params(method='ivfflat', lists='20'))
    assert req['lists_auto'] is False and req['params'] == {'lists': 20}
    assert validate_params(params())['lists_auto'] is False
    assert validate_params(params(method='ivfflat'))['min_rows_per_list'] == 50


@pytest.mark.parametrize('kw,match', [
    (dict(lists='auto'), 'lists: auto sizes the lists of an ivfflat index and applies to method=ivfflat only; '
                         'method=hnsw takes: m, ef_construction'),
    (dict(method='ivfflat', lists='many'), "lists: 'many' is not valid; use 'auto' or an integer from 1 to 32768"),
    (dict(method='ivfflat', retrain_growth_factor=1), 'retrain_growth_factor: 1 must be greater than 1'),
    (dict(method='ivfflat', retrain_growth_factor=0.5), 'retrain_growth_factor: 0.5 must be greater than 1'),
    (dict(method='ivfflat', retrain_growth_factor='x'), "retrain_growth_factor: 'x' is not a number"),
    (dict(retrain_growth_factor=2), 'retrain_growth_factor: applies to method=ivfflat only'),
    (dict(min_recall=0), 'min_recall: 0 is outside (0, 1]'),
    (dict(min_recall=-0.5), 'min_recall: -0.5 is outside (0, 1]'),
    (dict(min_recall=1.01), 'min_recall: 1.01 is outside (0, 1]'),
    (dict(recall_sample_size=10), 'recall_sample_size: set recall_check: true (or min_recall) to measure recall'),
    (dict(recall_k=5), 'recall_k: set recall_check: true'),
    (dict(recall_check=True, recall_sample_size=0), 'recall_sample_size: 0 must be at least 1'),
    (dict(recall_check=True, recall_k=0), 'recall_k: 0 is out of range; allowed values: 1..1000'),
    (dict(method='ivfflat', min_rows_per_list=0), 'min_rows_per_list: 0 must be at least 1'),
    (dict(search_defaults_roles=['']), 'search_defaults_roles: role names must not be empty'),
    (dict(state='absent', min_recall=0.9), 'state=absent takes no recall_check'),
])
def test_bad_quality_parameters_name_the_parameter(kw, match):
    fails(match, **kw)


def test_min_recall_one_is_allowed_and_implies_the_check():
    req = validate_params(params(min_recall=1))
    assert req['recall'] is True and req['min_recall'] == 1.0 and req['recall_k'] == 10


def test_trained_rows_comment_round_trip():
    sql, values = pv.render_comment('public', 'docs_idx', 20000, 20, 'auto')
    assert interpolate(sql, values) == ('COMMENT ON INDEX "public"."docs_idx" IS '
                                        "'aistack.infra.pgvector_index trained_rows=20000 lists=20 lists_source=auto'")
    assert pv.parse_trained_rows(values[0]) == 20000
    assert pv.parse_trained_rows('someone else: trained_rows=5') is None
    assert pv.parse_trained_rows(None) is None


def test_recall_of_one_query_counts_ties_as_found():
    exact = [('a', 0.0), ('b', 0.1), ('c', 0.3)]
    assert pv.recall_of_query(exact, [('a', 0.0), ('b', 0.1), ('c', 0.3)]) == 1.0
    assert pv.recall_of_query(exact, [('a', 0.0), ('x', 0.5), ('y', 0.6)]) == pytest.approx(1 / 3.0)
    # 'd' is exactly as far as the third exact row: an equally good answer.
    assert pv.recall_of_query(exact, [('a', 0.0), ('b', 0.1), ('d', 0.3)]) == 1.0
    assert pv.recall_of_query([], []) == 1.0


def test_search_defaults_sql_and_settings_parsing():
    sql, values = pv.render_search_default('ivfflat.probes', 5, 'rag')
    assert interpolate(sql, values) == "ALTER DATABASE \"rag\" SET ivfflat.probes = '5'"
    sql, values = pv.render_search_default('hnsw.ef_search', 80, 'rag', role='rag_app')
    assert interpolate(sql, values) == "ALTER ROLE \"rag_app\" IN DATABASE \"rag\" SET hnsw.ef_search = '80'"
    with pytest.raises(PgvectorIndexError):
        pv.render_search_default('work_mem', '1GB', 'rag')
    assert pv.parse_setconfig(['ivfflat.probes=5', 'search_path=a,b']) == {'ivfflat.probes': '5',
                                                                            'search_path': 'a,b'}
    assert pv.distance_operator('vector_cosine_ops') == '<=>' and pv.distance_operator('bit_hamming_ops') == '<~>'


def test_plan_index_names():
    plan = [{'Plan': {'Node Type': 'Limit', 'Plans': [{'Node Type': 'Index Scan', 'Index Name': 'docs_idx'}]}}]
    assert pv.plan_index_names(plan) == {'docs_idx'}
    assert pv.plan_index_names([{'Plan': {'Node Type': 'Seq Scan'}}]) == set()


def test_auto_lists_ignores_the_trained_size_when_comparing():
    existing = existing_definition(dict(ROW, method='ivfflat', reloptions=['lists=7'], name='items_embedding_ivfflat_idx'))
    want = dict(existing, params={'lists': 20})
    assert compare_definitions(existing, want, ignore_params=('lists',)) == []
    assert compare_definitions(existing, want)[0]['key'] == 'params'


IVF = dict(ROW, name='items_embedding_ivfflat_idx', method='ivfflat', relkind='i', table_schema='public',
           reloptions=['lists=20'], comment='aistack.infra.pgvector_index trained_rows=20000 lists=20 lists_source=auto')


class QualityManager(ScriptedManager):
    """Also scripts the row count, the roles, the search defaults and the recall measurement."""
    column = {'type': 'vector', 'format': 'vector(8)', 'dims': 8}

    def __init__(self, conn, p, count=20000, recall=None, defaults=None, roles=(), **kw):
        self.count = count
        self.recall_by_value = recall or {}
        self.defaults = defaults or {}
        self.roles = set(roles)
        self.measured = []
        super().__init__(conn, p, **kw)

    def count_vectors(self, where):
        return self.count

    def read_search_defaults(self):
        return dict(self.defaults)

    def check_roles(self):
        missing = [r for r in self.req['search_defaults_roles'] if r not in self.roles]
        if missing:
            raise PgvectorIndexError('search_defaults_roles: role(s) %s do not exist' % ', '.join(missing))

    def measure_recall(self, current, ext_schema, setting, candidates, k, sample, min_recall):
        self.measured.append((setting, list(candidates), k, sample))
        tried = []
        for value in candidates:
            tried.append({'value': value, 'recall_at_k': self.recall_by_value.get(value, 0.5)})
            if min_recall is None or tried[-1]['recall_at_k'] >= min_recall:
                break
        return tried


def ivf(**kw):
    return params(method='ivfflat', **kw)


def test_empty_table_defers_and_changes_nothing():
    conn = FakeConn()
    result = QualityManager(conn, ivf(), count=0).run()
    assert result['changed'] is False and result['deferred'] is True
    assert result['executed_queries'] == [] and conn.ran == []
    assert result['index'] == {} and result['search_settings'] == {}
    assert 'public.items has 0 rows (non-NULL embedding), fewer than the 50 needed to train 1 list(s)' \
        in result['warnings'][0]
    assert 'Run this task again once the table holds at least 50 rows' in result['warnings'][0]
    assert result['training'] == {'rows': 0, 'lists': 1, 'lists_source': 'auto', 'min_rows_per_list': 50,
                                  'rows_needed': 50, 'trained_rows': None, 'retrain_growth_factor': None,
                                  'retrain_at_rows': None}


def test_no_search_defaults_without_an_index():
    conn = FakeConn()
    result = QualityManager(conn, ivf(search_defaults_database=True, recall_check=True), count=10).run()
    assert result['deferred'] is True and result['executed_queries'] == [] and conn.ran == []
    assert result['decisions'][-1] == 'search defaults: not set, there is no index yet'
    assert result['recall'] == {'measured': False, 'reason': 'no index to measure'}


def test_explicit_lists_defer_until_each_list_has_its_rows():
    result = QualityManager(FakeConn(), ivf(lists=100), count=4999).run()
    assert result['deferred'] is True and 'fewer than the 5000 needed to train 100 list(s)' in result['warnings'][0]
    result = QualityManager(FakeConn(), ivf(lists=100), count=5000).run()
    assert result['deferred'] is False and result['changed'] is True


def test_auto_lists_build_records_the_trained_rows():
    conn = FakeConn()
    result = QualityManager(conn, ivf(opclass='vector_cosine_ops'), count=20000).run()
    assert result['changed'] is True
    assert result['executed_queries'][-2].endswith('USING ivfflat ("embedding" "public"."vector_cosine_ops") '
                                                   'WITH (lists = 20)')
    assert result['executed_queries'][-1] == ('COMMENT ON INDEX "public"."items_embedding_ivfflat_idx" IS '
                                              "'aistack.infra.pgvector_index trained_rows=20000 lists=20 "
                                              "lists_source=auto'")
    assert result['training']['lists'] == 20 and result['training']['trained_rows'] == 20000
    assert result['search_settings'] == {'ivfflat.probes': 5, 'source': 'sqrt(lists) = sqrt(20)'}
    assert result['decisions'][0] == 'lists: auto chose 20 for 20000 rows (rows / 1000, bounded to 1..32768)'


def test_existing_auto_index_is_kept_until_it_outgrows_the_factor():
    rows = {'items_embedding_ivfflat_idx': IVF}
    kept = QualityManager(FakeConn(), ivf(retrain_growth_factor=2), count=40000, index_rows=rows).run()
    assert kept['changed'] is False and kept['executed_queries'] == []
    assert kept['training']['retrain_at_rows'] == 40000 and kept['search_settings']['ivfflat.probes'] == 5
    assert ('unchanged: index public.items_embedding_ivfflat_idx matches the definition (lists: auto keeps the 20 '
            'lists it was trained with)') in kept['decisions']
    grown = QualityManager(FakeConn(), ivf(retrain_growth_factor=2), count=40001, index_rows=rows).run()
    assert grown['changed'] is True
    statements = grown['executed_queries']
    assert statements[-4].startswith('CREATE INDEX CONCURRENTLY "items_embedding_ivfflat_idx_aisnew"')
    assert statements[-4].endswith('WITH (lists = 40)')
    assert statements[-3:-1] == ['DROP INDEX CONCURRENTLY "public"."items_embedding_ivfflat_idx"',
                                 'ALTER INDEX "public"."items_embedding_ivfflat_idx_aisnew" RENAME TO '
                                 '"items_embedding_ivfflat_idx"']
    assert 'trained_rows=40001 lists=40' in statements[-1]
    # Without the opt-in, the same growth changes nothing.
    assert QualityManager(FakeConn(), ivf(), count=10 ** 6, index_rows=rows).run()['changed'] is False


def test_index_without_a_record_is_retrained_once_when_asked():
    rows = {'items_embedding_ivfflat_idx': dict(IVF, comment=None, reloptions=['lists=100'])}
    result = QualityManager(FakeConn(), ivf(retrain_growth_factor=2), count=3000, index_rows=rows).run()
    assert result['changed'] is True and 'WITH (lists = 3)' in result['executed_queries'][-4]
    assert result['decisions'][1].startswith('retrain: the index records no training row count')
    # The seed's untrained index on a still empty table: the rebuild waits, the index stays.
    waiting = QualityManager(FakeConn(), ivf(retrain_growth_factor=2), count=0, index_rows=rows).run()
    assert waiting['changed'] is False and waiting['deferred'] is True
    assert 'not re-trained (the existing index stays)' in waiting['warnings'][0]


def test_sample_larger_than_the_table_fails_before_anything():
    conn = FakeConn()
    with pytest.raises(PgvectorIndexError) as exc:
        QualityManager(conn, ivf(recall_check=True, recall_sample_size=501), count=500).run()
    assert 'recall_sample_size: 501 is larger than the 500 rows' in exc.value.msg
    assert conn.ran == []


def test_min_recall_picks_the_smallest_setting_and_sets_defaults():
    rows = {'items_embedding_ivfflat_idx': IVF}
    mgr = QualityManager(FakeConn(), ivf(min_recall=0.95, search_defaults_database=True,
                                         search_defaults_roles=['rag_app']),
                         index_rows=rows, recall={1: 0.7, 2: 0.9, 4: 0.96}, roles={'rag_app'},
                         defaults={'rag_app': {'ivfflat.probes': '4'}})
    mgr.params['db'] = 'rag'
    result = mgr.run()
    assert mgr.measured == [('ivfflat.probes', [1, 2, 4, 8, 16, 20], 10, 100)]
    assert result['recall_at_k'] == 0.96 and result['search_settings']['ivfflat.probes'] == 4
    assert result['changed'] is True
    assert result['executed_queries'] == ["ALTER DATABASE \"rag\" SET ivfflat.probes = '4'"]
    assert [d['changed'] for d in result['search_settings']['defaults']] == [True, False]


def test_min_recall_not_reached_fails_with_the_figure():
    rows = {'items_embedding_ivfflat_idx': IVF}
    with pytest.raises(PgvectorIndexError) as exc:
        QualityManager(FakeConn(), ivf(min_recall=0.99), index_rows=rows, recall={20: 0.9}).run()
    assert 'reaches recall@10 = 0.9000 at best (ivfflat.probes = 20, the highest tried' in exc.value.msg
    assert 'below min_recall 0.99' in exc.value.msg
    assert exc.value.details['recall_at_k'] == 0.9


def test_check_mode_reports_without_measuring_a_future_index():
    conn = FakeConn()
    mgr = QualityManager(conn, ivf(recall_check=True, search_defaults_database=True), count=3000)
    mgr.check_mode = True
    mgr.params['db'] = 'rag'
    result = mgr.run()
    assert conn.ran == [] and mgr.measured == []
    assert result['recall']['measured'] is False
    assert result['executed_queries'][-1] == "ALTER DATABASE \"rag\" SET ivfflat.probes = '2'"
    assert 'search defaults: database rag would get ivfflat.probes = 2 (was unset)' in result['decisions']


def test_unknown_role_for_defaults_fails_before_anything():
    conn = FakeConn()
    with pytest.raises(PgvectorIndexError) as exc:
        QualityManager(conn, ivf(search_defaults_roles=['ghost'])).run()
    assert 'ghost' in exc.value.msg and conn.ran == []


def test_hnsw_recall_uses_ef_search():
    rows = {'items_embedding_hnsw_idx': EXISTING}
    mgr = QualityManager(FakeConn(), params(recall_check=True, recall_k=50), index_rows=rows, count=80,
                         recall={50: 0.97})
    result = mgr.run()
    assert mgr.measured == [('hnsw.ef_search', [50], 50, 80)]
    assert result['search_settings'] == {'hnsw.ef_search': 50, 'source': "pgvector's default 40, at least recall_k 50"}
    assert result['recall']['recall_at_k'] == 0.97 and result['changed'] is False

# -*- coding: utf-8 -*-
# Copyright: aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgvector ivfflat/hnsw index management for aistack.infra.pgvector_index (private).

Layout: pure helpers (validation, definition comparison, SQL rendering, build-settings
sizing) that the unit tests call directly, then ``PgvectorIndexManager`` which reads the
catalogue, decides, and runs (or, in check mode, only returns) the statements.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import math
import os
import re
import time

try:
    import psycopg2
    HAS_PSYCOPG2 = True
except ImportError:  # pragma: no cover - the module reports it through missing_required_lib()
    psycopg2 = None
    HAS_PSYCOPG2 = False


class PgvectorIndexError(Exception):
    """A problem the user can act on; main() turns it into fail_json(msg=...)."""

    def __init__(self, msg, **details):
        super(PgvectorIndexError, self).__init__(msg)
        self.msg = msg
        self.details = details


# ---------------------------------------------------------------------------------------
# What pgvector supports, and from which extension version.
# ---------------------------------------------------------------------------------------

METHODS = ('hnsw', 'ivfflat')
METHOD_MIN_VERSION = {'ivfflat': (0, 1, 0), 'hnsw': (0, 5, 0)}
# Parallel builds: ivfflat since 0.5.0, hnsw since 0.6.0.
PARALLEL_MIN_VERSION = {'ivfflat': (0, 5, 0), 'hnsw': (0, 6, 0)}
TYPE_MIN_VERSION = {'vector': (0, 1, 0), 'halfvec': (0, 7, 0), 'sparsevec': (0, 7, 0), 'bit': (0, 7, 0)}

_V01 = (0, 1, 0)
_V05 = (0, 5, 0)
_V07 = (0, 7, 0)

# opclass -> (column type, {method: first pgvector version that has this opclass for the method})
OPCLASSES = {
    'vector_l2_ops': ('vector', {'ivfflat': _V01, 'hnsw': _V05}),
    'vector_ip_ops': ('vector', {'ivfflat': _V01, 'hnsw': _V05}),
    'vector_cosine_ops': ('vector', {'ivfflat': _V01, 'hnsw': _V05}),
    'vector_l1_ops': ('vector', {'hnsw': _V07}),
    'halfvec_l2_ops': ('halfvec', {'ivfflat': _V07, 'hnsw': _V07}),
    'halfvec_ip_ops': ('halfvec', {'ivfflat': _V07, 'hnsw': _V07}),
    'halfvec_cosine_ops': ('halfvec', {'ivfflat': _V07, 'hnsw': _V07}),
    'halfvec_l1_ops': ('halfvec', {'hnsw': _V07}),
    'sparsevec_l2_ops': ('sparsevec', {'hnsw': _V07}),
    'sparsevec_ip_ops': ('sparsevec', {'hnsw': _V07}),
    'sparsevec_cosine_ops': ('sparsevec', {'hnsw': _V07}),
    'sparsevec_l1_ops': ('sparsevec', {'hnsw': _V07}),
    'bit_hamming_ops': ('bit', {'ivfflat': _V07, 'hnsw': _V07}),
    'bit_jaccard_ops': ('bit', {'hnsw': _V07}),
}
OPCLASS_NAMES = sorted(OPCLASSES)
DEFAULT_OPCLASS = {'vector': 'vector_l2_ops', 'halfvec': 'halfvec_l2_ops',
                   'sparsevec': 'sparsevec_l2_ops', 'bit': 'bit_hamming_ops'}
VECTOR_TYPES = ('vector', 'halfvec', 'sparsevec', 'bit')

# Largest dimension an index accepts (sparsevec: non-zero elements per vector).
DIM_LIMITS = {'vector': 2000, 'halfvec': 4000, 'bit': 64000, 'sparsevec': 1000}

# Index parameters: allowed range and pgvector's default (used when reloptions omit them).
PARAM_RANGES = {
    'lists': (1, 32768),
    'm': (2, 100),
    'ef_construction': (4, 1000),
}
PARAM_DEFAULTS = {'ivfflat': {'lists': 100}, 'hnsw': {'m': 16, 'ef_construction': 64}}
METHOD_PARAMS = {'ivfflat': ('lists',), 'hnsw': ('m', 'ef_construction')}

NAME_MAX_BYTES = 63
TMP_SUFFIX = '_aisnew'
MB = 1024 * 1024
MIN_MWM_MB = 64
REMOTE_MWM_CAP_MB = 1024
MEMORY_CAP_FRACTION = 0.25
PARALLEL_MIN_DATA_MB = 16
PG_MIN_MWM_PER_PARTICIPANT_MB = 32  # PostgreSQL's plan_create_index_workers() rule

# Search quality: ivfflat training, re-training, search settings, recall.
DEFAULT_MIN_ROWS_PER_LIST = 50  # pgvector's k-means samples up to 50 rows a list
AUTO_LISTS_SQRT_ABOVE = 1000000  # pgvector: rows / 1000 up to 1M rows, sqrt(rows) beyond
DEFAULT_RECALL_K = 10
DEFAULT_RECALL_SAMPLE = 100
HNSW_DEFAULT_EF_SEARCH = 40
EF_SEARCH_MAX = 1000
RECALL_SEED = 0.42  # setseed(): the same sample of rows while the table is unchanged
COMMENT_MARK = 'aistack.infra.pgvector_index'
SEARCH_SETTING = {'ivfflat': 'ivfflat.probes', 'hnsw': 'hnsw.ef_search'}
DISTANCE_OPERATORS = {'l2': '<->', 'ip': '<#>', 'cosine': '<=>', 'l1': '<+>', 'hamming': '<~>', 'jaccard': '<%>'}

# ---------------------------------------------------------------------------------------
# Small pure helpers
# ---------------------------------------------------------------------------------------


def quote_ident(name):
    """Quote one SQL identifier (always quoted, embedded quotes doubled)."""
    if name is None or name == '':
        raise PgvectorIndexError('empty SQL identifier')
    if '\x00' in name:
        raise PgvectorIndexError('SQL identifier %r contains a NUL byte' % name)
    return '"' + name.replace('"', '""') + '"'


def qualify(*parts):
    return '.'.join(quote_ident(p) for p in parts)


def parse_version(text):
    """'0.8.1' -> (0, 8, 1); '0.5.0-dev' -> (0, 5, 0)."""
    nums = [int(x) for x in re.findall(r'\d+', text or '')[:3]]
    while len(nums) < 3:
        nums.append(0)
    return tuple(nums)


def format_version(ver):
    return '.'.join(str(x) for x in ver)


_SIZE_RE = re.compile(r'^\s*(\d+)\s*(b|kb|mb|gb|tb)?\s*$', re.IGNORECASE)
_SIZE_FACTORS_KB = {'b': None, 'kb': 1, 'mb': 1024, 'gb': 1024 ** 2, 'tb': 1024 ** 3}


def parse_size_kb(value, param='maintenance_work_mem'):
    """'2GB' -> 2097152 (kB). A bare number means kB, as in postgresql.conf."""
    match = _SIZE_RE.match(str(value))
    if not match:
        raise PgvectorIndexError(
            "%s: %r is not a size; use 'auto' or a number with a unit: kB, MB, GB or TB (for example 2GB)"
            % (param, value))
    number, unit = int(match.group(1)), (match.group(2) or 'kb').lower()
    if unit == 'b':
        return number // 1024
    return number * _SIZE_FACTORS_KB[unit]


def format_size_kb(kb):
    """Render kB as PostgreSQL writes sizes: whole GB or MB when exact, else kB."""
    if kb % (1024 * 1024) == 0:
        return '%dGB' % (kb // (1024 * 1024))
    if kb % 1024 == 0:
        return '%dMB' % (kb // 1024)
    return '%dkB' % kb


def derive_index_name(table, column, method):
    """Default name ``<table>_<column>_<method>_idx``, cut to PostgreSQL's 63-byte limit."""
    return truncate_name('%s_%s_%s_idx' % (table, column, method))


def truncate_name(name, limit=NAME_MAX_BYTES):
    raw = name.encode('utf-8')
    if len(raw) <= limit:
        return name
    return raw[:limit].decode('utf-8', 'ignore')


def parse_reloptions(reloptions):
    """['m=16', 'ef_construction=64'] -> {'m': 16, 'ef_construction': 64}."""
    result = {}
    for item in reloptions or []:
        key, _sep, val = item.partition('=')
        try:
            result[key] = int(val)
        except ValueError:
            result[key] = val
    return result


def normalize_predicate_text(pred):
    """Fallback normalisation of a WHERE text when the server cannot normalise it for us."""
    if pred is None:
        return None
    text = ' '.join(pred.split())
    while text.startswith('(') and text.endswith(')') and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text or None


def _balanced(text):
    depth = 0
    for char in text:
        if char == '(':
            depth += 1
        elif char == ')':
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def auto_lists(rows):
    """pgvector's recommendation: rows / 1000 up to 1M rows, sqrt(rows) beyond; bounded to 1..32768."""
    rows = max(int(rows or 0), 0)
    lists = rows // 1000 if rows <= AUTO_LISTS_SQRT_ABOVE else int(math.sqrt(rows))
    low, high = PARAM_RANGES['lists']
    return max(low, min(lists, high))


def auto_lists_rule(rows):
    return 'rows / 1000' if rows <= AUTO_LISTS_SQRT_ABOVE else 'sqrt(rows)'


def recommended_probes(lists):
    """pgvector's starting point for ivfflat.probes: sqrt(lists)."""
    return max(1, int(math.ceil(math.sqrt(max(int(lists), 1)))))


def recommended_ef_search(k):
    """hnsw.ef_search: pgvector's default 40, and never below k (a scan returns at most ef_search rows)."""
    return min(max(HNSW_DEFAULT_EF_SEARCH, int(k)), EF_SEARCH_MAX)


def search_candidates(method, lists, k, find_minimum):
    """Values of the search setting to measure, in order: one (the recommendation), or the ladder that
    finds the smallest value reaching min_recall (ivfflat: 1, 2, 4 ... lists; hnsw: k, 2k ... 1000)."""
    if method == 'ivfflat':
        if not find_minimum:
            return [recommended_probes(lists)]
        values, value = [], 1
        while value < lists:
            values.append(value)
            value *= 2
        return values + [lists]
    if not find_minimum:
        return [recommended_ef_search(k)]
    values, value = [], max(int(k), 1)
    while value < EF_SEARCH_MAX:
        values.append(value)
        value *= 2
    return values + [EF_SEARCH_MAX]


def distance_operator(opclass):
    """The operator an opclass serves: vector_cosine_ops -> '<=>'."""
    kind = opclass.split('_')[1]
    return DISTANCE_OPERATORS[kind]


def render_comment(schema, name, trained_rows, lists, lists_source):
    text = '%s trained_rows=%d lists=%d lists_source=%s' % (COMMENT_MARK, trained_rows, lists, lists_source)
    return 'COMMENT ON INDEX %s IS %%s' % qualify(schema, name), [text]


def parse_trained_rows(comment):
    """The row count recorded by render_comment(), or None."""
    if not comment or COMMENT_MARK not in comment:
        return None
    match = re.search(r'\btrained_rows=(\d+)', comment)
    return int(match.group(1)) if match else None


def recall_of_query(exact, found):
    """Share of the exact top-k that the index returned. ``exact``/``found``: [(row id, distance)].

    An index row at the same distance as the k-th exact row counts as a hit (ties have no order).
    """
    if not exact:
        return 1.0
    truth = set(row for row, _dist in exact)
    kth = exact[-1][1]
    tolerance = 1e-6 * max(1.0, abs(kth))
    hits = sum(1 for row, dist in found if row in truth or (dist is not None and dist <= kth + tolerance))
    return min(hits, len(exact)) / float(len(exact))


def render_search_default(setting, value, dbname, role=None):
    if setting not in SEARCH_SETTING.values():
        raise PgvectorIndexError('invalid search setting %r' % setting)
    if role:
        return ('ALTER ROLE %s IN DATABASE %s SET %s = %%s' % (quote_ident(role), quote_ident(dbname), setting),
                [str(value)])
    return 'ALTER DATABASE %s SET %s = %%s' % (quote_ident(dbname), setting), [str(value)]


def parse_setconfig(setconfig):
    """['ivfflat.probes=5', 'work_mem=64MB'] -> {'ivfflat.probes': '5', 'work_mem': '64MB'}."""
    result = {}
    for item in setconfig or []:
        key, _sep, val = item.partition('=')
        result[key] = val
    return result


def allowed_opclasses(col_type, method):
    return [name for name in OPCLASS_NAMES
            if OPCLASSES[name][0] == col_type and method in OPCLASSES[name][1]]


def element_bytes(col_type, dims):
    """Bytes of one stored value (varlena header included) for a fixed-dimension column."""
    if col_type == 'vector':
        return 8 + 4 * dims
    if col_type == 'halfvec':
        return 8 + 2 * dims
    if col_type == 'bit':
        return 8 + (dims + 7) // 8
    if col_type == 'sparsevec':
        return 16 + 8 * dims  # dims = non-zero elements here
    raise PgvectorIndexError('unsupported column type %r' % col_type)


def _align8(value):
    return (value + 7) // 8 * 8


# ---------------------------------------------------------------------------------------
# Step 1: validate the parameters alone (no server needed)
# ---------------------------------------------------------------------------------------


def validate_params(params):
    """Check the parameters on their own; return the normalised request. Raises PgvectorIndexError."""
    state = params.get('state') or 'present'
    method = params.get('method') or 'hnsw'
    if method not in METHODS:
        raise PgvectorIndexError('method: %r is not supported; allowed values: %s' % (method, ', '.join(METHODS)))
    req = {
        'state': state,
        'schema': params.get('schema') or 'public',
        'table': params.get('table'),
        'column': params.get('column'),
        'method': method,
        'opclass': params.get('opclass'),
        'where': params.get('where'),
        'concurrently': params.get('concurrently', True),
        'recreate': params.get('recreate') or 'never',
        'create_extension': bool(params.get('create_extension')),
    }
    if req['where'] is not None:
        req['where'] = req['where'].strip()
        if not req['where']:
            req['where'] = None
        elif req['where'].lower().startswith('where '):
            raise PgvectorIndexError("where: give the predicate without the WHERE keyword, for example: "
                                     "\"category = 'news'\"")
        elif ';' in req['where'] and not _semicolon_in_literal_only(req['where']):
            raise PgvectorIndexError('where: one boolean expression is expected, without ";"')

    name = params.get('name')
    if name:
        if len(name.encode('utf-8')) > NAME_MAX_BYTES:
            raise PgvectorIndexError('name: %r is longer than PostgreSQL\'s limit of %d bytes'
                                     % (name, NAME_MAX_BYTES))
    elif req['table'] and req['column']:
        name = derive_index_name(req['table'], req['column'], method)
    elif state == 'absent':
        raise PgvectorIndexError('state=absent needs name, or table and column to derive the default name '
                                 '<table>_<column>_<method>_idx')
    req['name'] = name

    if state == 'present':
        for key in ('table', 'column'):
            if not req[key]:
                raise PgvectorIndexError('%s is required when state=present' % key)

    opclass = req['opclass']
    if opclass is not None:
        if opclass not in OPCLASSES:
            raise PgvectorIndexError('opclass: %r is not a pgvector operator class; allowed values: %s'
                                     % (opclass, ', '.join(OPCLASS_NAMES)))
        if method not in OPCLASSES[opclass][1]:
            raise PgvectorIndexError(
                'opclass: %s cannot be used with method=%s; allowed for %s columns with %s: %s'
                % (opclass, method, OPCLASSES[opclass][0], method,
                   ', '.join(allowed_opclasses(OPCLASSES[opclass][0], method)) or 'none'))

    index_params = {}
    lists = params.get('lists')
    if isinstance(lists, str):
        text = lists.strip().lower()
        if text == 'auto':
            lists = 'auto'
        elif re.match(r'^-?\d+$', text):
            lists = int(text)
        else:
            raise PgvectorIndexError("lists: %r is not valid; use 'auto' or an integer from %d to %d"
                                     % (params.get('lists'), PARAM_RANGES['lists'][0], PARAM_RANGES['lists'][1]))
    if lists == 'auto' and method != 'ivfflat':
        raise PgvectorIndexError('lists: auto sizes the lists of an ivfflat index and applies to method=ivfflat '
                                 'only; method=%s takes: %s' % (method, ', '.join(METHOD_PARAMS[method])))
    req['lists_auto'] = method == 'ivfflat' and lists in (None, 'auto')
    for key in ('lists', 'm', 'ef_construction'):
        value = lists if key == 'lists' else params.get(key)
        if value is None or value == 'auto':
            continue
        if key not in METHOD_PARAMS[method]:
            raise PgvectorIndexError('%s: applies to method=%s only; method=%s takes: %s'
                                     % (key, 'ivfflat' if key == 'lists' else 'hnsw', method,
                                        ', '.join(METHOD_PARAMS[method])))
        low, high = PARAM_RANGES[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < low or value > high:
            raise PgvectorIndexError('%s: %r is out of range; allowed values: %d..%d' % (key, value, low, high))
        index_params[key] = value
    for key, value in PARAM_DEFAULTS[method].items():
        index_params.setdefault(key, value)
    if method == 'hnsw' and index_params['ef_construction'] < 2 * index_params['m']:
        raise PgvectorIndexError('ef_construction: %d%s is too small for m=%d; it must be at least 2 * m = %d'
                                 % (index_params['ef_construction'],
                                    '' if params.get('ef_construction') is not None else ' (the default)',
                                    index_params['m'], 2 * index_params['m']))
    req['params'] = index_params
    _validate_quality_params(params, req)

    mwm = params.get('maintenance_work_mem')
    if mwm is None or str(mwm).strip().lower() == 'auto':
        req['maintenance_work_mem_kb'] = None
    else:
        kb = parse_size_kb(mwm)
        if kb < 1024:
            raise PgvectorIndexError("maintenance_work_mem: %r is below PostgreSQL's minimum of 1MB; "
                                     "use 'auto' or a size such as 512MB or 2GB" % (mwm,))
        req['maintenance_work_mem_kb'] = kb
    workers = params.get('max_parallel_maintenance_workers')
    if workers is None or str(workers).strip().lower() == 'auto':
        req['workers'] = None
    else:
        try:
            if isinstance(workers, bool):
                raise ValueError
            workers_int = int(str(workers).strip())
        except ValueError:
            workers_int = -1
        if workers_int < 0 or workers_int > 1024:
            raise PgvectorIndexError("max_parallel_maintenance_workers: %r is not valid; use 'auto' or an "
                                     "integer from 0 to 1024" % (workers,))
        req['workers'] = workers_int
    for key in ('server_memory_mb', 'server_cpus'):
        value = params.get(key)
        if value is not None and value < 1:
            raise PgvectorIndexError('%s: %r must be a positive integer' % (key, value))
        req[key] = value
    return req


def _number(value, param, kind):
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise PgvectorIndexError('%s: %r is not a number' % (param, value))


def _validate_quality_params(params, req):
    """Training, re-training, search settings and recall parameters (see the module's DOCUMENTATION)."""
    method = req['method']
    per_list = _number(params.get('min_rows_per_list'), 'min_rows_per_list', int)
    if per_list is None:
        per_list = DEFAULT_MIN_ROWS_PER_LIST
    if per_list < 1:
        raise PgvectorIndexError('min_rows_per_list: %r must be at least 1 (rows needed per ivfflat list '
                                 'before the index is built)' % (per_list,))
    req['min_rows_per_list'] = per_list

    factor = _number(params.get('retrain_growth_factor'), 'retrain_growth_factor', float)
    if factor is not None:
        if method != 'ivfflat':
            raise PgvectorIndexError('retrain_growth_factor: applies to method=ivfflat only (an hnsw graph has '
                                     'no trained lists); remove it for method=%s' % method)
        if factor <= 1 or math.isinf(factor) or math.isnan(factor):
            raise PgvectorIndexError('retrain_growth_factor: %r must be greater than 1: the index is rebuilt when '
                                     'the table holds more than this many times the rows it was trained on '
                                     '(for example 2)' % (params.get('retrain_growth_factor'),))
    req['retrain_growth_factor'] = factor

    min_recall = _number(params.get('min_recall'), 'min_recall', float)
    if min_recall is not None and not 0 < min_recall <= 1:
        raise PgvectorIndexError('min_recall: %r is outside (0, 1]; give the lowest acceptable recall@k as a '
                                 'fraction, for example 0.95' % (params.get('min_recall'),))
    req['min_recall'] = min_recall
    req['recall'] = bool(params.get('recall_check')) or min_recall is not None
    sample = _number(params.get('recall_sample_size'), 'recall_sample_size', int)
    k = _number(params.get('recall_k'), 'recall_k', int)
    if (sample is not None or k is not None) and not req['recall']:
        raise PgvectorIndexError('%s: set recall_check: true (or min_recall) to measure recall'
                                 % ('recall_sample_size' if sample is not None else 'recall_k'))
    if sample is not None and sample < 1:
        raise PgvectorIndexError('recall_sample_size: %r must be at least 1 (rows used as queries)' % (sample,))
    if k is not None and not 1 <= k <= EF_SEARCH_MAX:
        raise PgvectorIndexError('recall_k: %r is out of range; allowed values: 1..%d' % (k, EF_SEARCH_MAX))
    req['recall_sample_size'] = sample
    req['recall_k'] = k if k is not None else DEFAULT_RECALL_K

    req['search_defaults_database'] = bool(params.get('search_defaults_database'))
    roles = params.get('search_defaults_roles') or []
    for role in roles:
        if not role or not str(role).strip():
            raise PgvectorIndexError('search_defaults_roles: role names must not be empty')
    req['search_defaults_roles'] = [str(role) for role in roles]
    if req['state'] == 'absent' and (req['recall'] or req['search_defaults_database'] or roles or factor):
        raise PgvectorIndexError('state=absent takes no recall_check, min_recall, retrain_growth_factor or '
                                 'search_defaults_* options')


def _semicolon_in_literal_only(text):
    stripped = re.sub(r"'(?:[^']|'')*'", "''", text)
    return ';' not in stripped


# ---------------------------------------------------------------------------------------
# Step 2: checks that need the server's answers (column type, extension version)
# ---------------------------------------------------------------------------------------


def check_against_server(req, column_info, ext_version):
    """Validate the request against the column and the pgvector version; return the opclass to use."""
    col_type = column_info['type']
    qualified = '%s.%s.%s' % (req['schema'], req['table'], req['column'])
    if col_type not in VECTOR_TYPES:
        raise PgvectorIndexError(
            'column: %s is of type %s, not a pgvector type; an ivfflat/hnsw index needs a column of type: %s'
            % (qualified, column_info['format'], ', '.join(VECTOR_TYPES)))
    method = req['method']
    opclass = req['opclass'] or DEFAULT_OPCLASS[col_type]
    opclass_type, methods = OPCLASSES[opclass]
    if opclass_type != col_type:
        raise PgvectorIndexError(
            'opclass: %s is for %s columns but %s is %s; allowed with method=%s: %s'
            % (opclass, opclass_type, qualified, column_info['format'], method,
               ', '.join(allowed_opclasses(col_type, method)) or 'none (use method=hnsw)'))
    if method not in methods:
        raise PgvectorIndexError('opclass: %s cannot be used with method=%s; allowed for %s with %s: %s'
                                 % (opclass, method, col_type, method,
                                    ', '.join(allowed_opclasses(col_type, method)) or 'none (use method=hnsw)'))
    if ext_version is not None:
        needs = [('method=%s' % method, METHOD_MIN_VERSION[method]),
                 ('%s columns' % col_type, TYPE_MIN_VERSION[col_type]),
                 ('opclass %s with %s' % (opclass, method), methods[method])]
        for what, minimum in needs:
            if ext_version < minimum:
                raise PgvectorIndexError(
                    'pgvector %s is installed in this database; %s needs pgvector %s or later. '
                    'Upgrade the extension (ALTER EXTENSION vector UPDATE) after installing a newer pgvector.'
                    % (format_version(ext_version), what, format_version(minimum)))
    dims = column_info.get('dims')
    if col_type != 'sparsevec':
        if dims is None or dims < 1:
            raise PgvectorIndexError(
                'column: %s has no fixed dimension (%s); indexes need a typed column such as %s(768)'
                % (qualified, column_info['format'], col_type))
        if dims > DIM_LIMITS[col_type]:
            raise PgvectorIndexError(
                'column: %s has %d dimensions; %s indexes on %s columns allow at most %d. '
                'Index a halfvec expression or reduce the dimension.'
                % (qualified, dims, method, col_type, DIM_LIMITS[col_type]))
    return opclass


# ---------------------------------------------------------------------------------------
# Definitions and their comparison
# ---------------------------------------------------------------------------------------

COMPARED_KEYS = ('table', 'column', 'method', 'opclass', 'params', 'where')


def desired_definition(req, opclass, where_normalized):
    return {
        'name': req['name'],
        'schema': req['schema'],
        'table': req['table'],
        'column': req['column'],
        'method': req['method'],
        'opclass': opclass,
        'params': dict(req['params']),
        'where': where_normalized,
    }


def existing_definition(row):
    """Normalise a catalogue row (see PgvectorIndexManager.read_index) into a definition dict."""
    params = parse_reloptions(row.get('reloptions'))
    method = row['method']
    for key, value in PARAM_DEFAULTS.get(method, {}).items():
        params.setdefault(key, value)
    columns = row.get('columns') or []
    opclasses = row.get('opclasses') or []
    return {
        'name': row['name'],
        'schema': row['schema'],
        'table': row['table'],
        'column': columns[0] if len(columns) == 1 and not row.get('has_expressions') else None,
        'columns': list(columns),
        'method': method,
        'opclass': opclasses[0] if len(opclasses) == 1 else ','.join(opclasses),
        'params': params,
        'where': row.get('predicate'),
        'unique': bool(row.get('unique')),
        'expressions': bool(row.get('has_expressions')),
        'indexdef': row.get('indexdef'),
        'valid': bool(row.get('valid')),
        'comment': row.get('comment'),
    }


def compare_definitions(existing, desired, ignore_params=()):
    """Return the differences as a list of dicts {key, existing, desired}; empty when equal.

    ``ignore_params``: index parameters not compared (``lists`` when it is ``auto``: any trained size is
    accepted, and re-training is retrain_growth_factor's decision).
    """
    diffs = []
    for key in COMPARED_KEYS:
        have, want = existing.get(key), desired.get(key)
        if key == 'params' and ignore_params:
            have = dict((k, v) for k, v in (have or {}).items() if k not in ignore_params)
            want = dict((k, v) for k, v in (want or {}).items() if k not in ignore_params)
        if key == 'where':
            have = normalize_predicate_text(have)
            want = normalize_predicate_text(want)
        if have != want:
            diffs.append({'key': key, 'existing': have, 'desired': want})
    if existing.get('unique'):
        diffs.append({'key': 'unique', 'existing': True, 'desired': False})
    if existing.get('expressions') or len(existing.get('columns') or []) != 1:
        diffs.append({'key': 'columns', 'existing': existing.get('columns'), 'desired': [desired.get('column')]})
    return diffs


def format_differences(diffs):
    return '; '.join('%s: %r -> %r' % (d['key'], d['existing'], d['desired']) for d in diffs)


def public_definition(defn):
    """The definition as returned to the user (stable key set)."""
    if not defn:
        return {}
    keys = ('name', 'schema', 'table', 'column', 'method', 'opclass', 'params', 'where', 'indexdef', 'valid')
    return dict((k, defn.get(k)) for k in keys)


# ---------------------------------------------------------------------------------------
# SQL rendering: (sql, params) pairs; identifiers quoted here, values bound as parameters
# ---------------------------------------------------------------------------------------


def render_create(defn, opclass_schema=None, concurrently=True, index_name=None):
    """CREATE INDEX for a definition. ``index_name`` overrides defn['name'] (temporary name)."""
    name = index_name or defn['name']
    opclass = qualify(opclass_schema, defn['opclass']) if opclass_schema else quote_ident(defn['opclass'])
    keys = METHOD_PARAMS[defn['method']]
    with_sql = ', '.join('%s = %%s' % key for key in keys)
    values = [defn['params'][key] for key in keys]
    sql = 'CREATE INDEX %s%s ON %s USING %s (%s %s) WITH (%s)' % (
        'CONCURRENTLY ' if concurrently else '', quote_ident(name), qualify(defn['schema'], defn['table']),
        defn['method'], quote_ident(defn['column']), opclass, with_sql)
    if defn.get('where'):
        # The predicate is an SQL expression by nature; it was checked by the server beforehand.
        sql += ' WHERE ' + defn['where'].replace('%', '%%')
    return sql, values


def render_drop(schema, name, concurrently=True, if_exists=False):
    return 'DROP INDEX %s%s%s' % ('CONCURRENTLY ' if concurrently else '', 'IF EXISTS ' if if_exists else '',
                                  qualify(schema, name)), []


def render_rename(schema, old, new):
    return 'ALTER INDEX %s RENAME TO %s' % (qualify(schema, old), quote_ident(new)), []


def render_set(setting, value, local=False):
    if not re.match(r'^[a-z_]+$', setting):
        raise PgvectorIndexError('invalid setting name %r' % setting)
    return 'SET %s%s = %%s' % ('LOCAL ' if local else '', setting), [str(value)]


def render_create_extension():
    return 'CREATE EXTENSION IF NOT EXISTS vector', []


def interpolate(sql, values):
    """Render (sql, values) as text without a server, for logs and tests (psycopg2 does it for real)."""
    def lit(value):
        if isinstance(value, bool):
            return 'true' if value else 'false'
        if isinstance(value, int):
            return str(value)
        return "'" + str(value).replace("'", "''") + "'"
    if not values:
        return sql.replace('%%', '%')
    return sql % tuple(lit(v) for v in values)


# ---------------------------------------------------------------------------------------
# Build settings: maintenance_work_mem and parallel workers for the build only
# ---------------------------------------------------------------------------------------


def estimate_build_memory_bytes(method, rows, elem_bytes, params):
    """Memory a build needs to keep its working set in RAM.

    hnsw: every element holds its vector plus 2*m neighbour slots on layer 0 and m on each upper
    layer (16 bytes a slot, 1/(m-1) upper layers on average) and about 200 bytes of element
    bookkeeping; measured on pgvector 0.8 (64MB held 17707 768-dim vectors at m=16, that is
    3.79kB each; this formula gives 3.81kB). ivfflat: the sort of (list, tid, vector) tuples and
    the k-means sample (50 vectors a list).
    """
    rows = max(int(rows), 0)
    if method == 'hnsw':
        m = params.get('m', 16)
        per = _align8(elem_bytes) + 2 * m * 16 + int(math.ceil(16.0 * m / max(m - 1, 1))) + 200
        return int(rows * per * 1.25) + 16 * MB
    lists = params.get('lists', 100)
    per = _align8(elem_bytes) + 64
    sample = min(rows, 50 * lists) * _align8(elem_bytes)
    return int(max(rows * per, sample) * 1.1) + 16 * MB


def plan_build_settings(method, rows, elem_bytes, params, ext_version, requested_mwm_kb, requested_workers,
                        server, host):
    """Choose maintenance_work_mem and max_parallel_maintenance_workers for one build.

    ``server``: {'maintenance_work_mem_kb', 'max_worker_processes', 'max_parallel_workers',
    'max_parallel_maintenance_workers', 'dynamic_shared_memory_type'} as read from pg_settings.
    ``host``: {'memory_mb', 'cpus', 'shm_free_mb', 'source'} where known (values may be None).
    Returns (settings, info): ``settings`` is an ordered list of (name, value) to SET, ``info`` the
    reasoning returned to the user as build_settings.
    """
    notes = []
    need_bytes = estimate_build_memory_bytes(method, rows, elem_bytes, params)
    need_mb = int(math.ceil(need_bytes / float(MB)))
    memory_mb = host.get('memory_mb')
    cpus = host.get('cpus')
    current_kb = server.get('maintenance_work_mem_kb') or MIN_MWM_MB * 1024
    if memory_mb:
        cap_mb = max(MIN_MWM_MB, int(memory_mb * MEMORY_CAP_FRACTION))
    else:
        cap_mb = REMOTE_MWM_CAP_MB
        notes.append('server memory unknown (remote server, no server_memory_mb given): '
                     'maintenance_work_mem capped at %dMB' % cap_mb)

    # maintenance_work_mem
    if requested_mwm_kb is not None:
        mwm_mb = None
        mwm_kb = requested_mwm_kb
        mwm_source = 'explicit'
    else:
        mwm_mb = max(MIN_MWM_MB, min(need_mb, cap_mb))
        # never lower what the server is already configured with (unless that is above the cap)
        mwm_mb = max(mwm_mb, min(current_kb // 1024, cap_mb))
        mwm_kb = mwm_mb * 1024
        mwm_source = 'auto'
        if need_mb > cap_mb:
            notes.append('the %s build needs about %dMB to stay in memory but auto is capped at %dMB '
                         '(%s); the build will be slower. Set maintenance_work_mem explicitly to override.'
                         % (method, need_mb, cap_mb,
                            '%d%% of %dMB' % (MEMORY_CAP_FRACTION * 100, memory_mb) if memory_mb else 'remote'))

    # parallel workers
    pool = min(server.get('max_parallel_workers', 8), server.get('max_worker_processes', 8))
    if requested_workers is not None:
        workers = requested_workers
        workers_source = 'explicit'
        if workers > pool:
            notes.append('max_parallel_maintenance_workers=%d but the server launches at most %d '
                         '(max_parallel_workers / max_worker_processes)' % (workers, pool))
    else:
        workers_source = 'auto'
        if cpus:
            workers = max(cpus - 1, 0)
        else:
            workers = 1
            notes.append('server CPU count unknown: assuming 2 (1 parallel worker); give server_cpus to size it')
        workers = min(workers, pool)
        data_mb = rows * elem_bytes / float(MB)
        if ext_version is not None and ext_version < PARALLEL_MIN_VERSION[method]:
            workers = 0
            notes.append('pgvector %s builds %s indexes serially (parallel builds need %s)'
                         % (format_version(ext_version), method, format_version(PARALLEL_MIN_VERSION[method])))
        elif data_mb < PARALLEL_MIN_DATA_MB and workers:
            workers = 0
            notes.append('table data (%.1fMB) too small for a parallel build to pay off' % data_mb)
        # PostgreSQL drops workers until each participant has 32MB of maintenance_work_mem.
        while workers and mwm_kb // 1024 // (workers + 1) < PG_MIN_MWM_PER_PARTICIPANT_MB:
            if mwm_source == 'auto' and PG_MIN_MWM_PER_PARTICIPANT_MB * (workers + 1) <= cap_mb:
                mwm_kb = PG_MIN_MWM_PER_PARTICIPANT_MB * (workers + 1) * 1024
            else:
                workers -= 1
        # Parallel builds keep the graph in dynamic shared memory (/dev/shm with "posix").
        shm_free = host.get('shm_free_mb')
        if (workers and method == 'hnsw' and shm_free is not None
                and server.get('dynamic_shared_memory_type') == 'posix' and mwm_kb // 1024 > shm_free * 0.8):
            notes.append('/dev/shm has %dMB free, less than the %dMB a parallel hnsw build maps there: '
                         'building serially' % (shm_free, mwm_kb // 1024))
            workers = 0

    settings = [('maintenance_work_mem', format_size_kb(mwm_kb)),
                ('max_parallel_maintenance_workers', workers)]
    if workers > 0:
        # pgvector columns are stored out of line (TOAST), so the heap PostgreSQL measures to plan
        # workers is tiny and the planner would build serially; lift that threshold for this build.
        settings.append(('min_parallel_table_scan_size', '0'))
    info = {
        'maintenance_work_mem': format_size_kb(mwm_kb),
        'max_parallel_maintenance_workers': workers,
        'settings': dict((k, v) for k, v in settings),
        'source': {'maintenance_work_mem': mwm_source, 'max_parallel_maintenance_workers': workers_source},
        'estimated_rows': int(rows),
        'bytes_per_vector': int(elem_bytes),
        'estimated_memory_mb': need_mb,
        'memory_cap_mb': cap_mb,
        'server_memory_mb': memory_mb,
        'server_cpus': cpus,
        'server_facts_from': host.get('source'),
        'notes': notes,
    }
    return settings, info


def plan_index_names(plan):
    """Every 'Index Name' in an EXPLAIN (FORMAT JSON) result."""
    names = set()
    stack = [plan]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if 'Index Name' in node:
                names.add(node['Index Name'])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names


def read_local_host_facts(meminfo_path='/proc/meminfo', shm_path='/dev/shm'):
    """Memory (MemTotal), usable CPU count (os.cpu_count() bounded by affinity) and free /dev/shm of this host."""
    try:
        cpus = len(os.sched_getaffinity(0))  # CPUs this process may use (cpusets, taskset)
    except (AttributeError, OSError):
        cpus = os.cpu_count()
    facts = {'memory_mb': None, 'cpus': cpus, 'shm_free_mb': None, 'source': 'local'}
    try:
        with open(meminfo_path) as handle:
            facts['memory_mb'] = parse_meminfo_mb(handle.read())
    except (IOError, OSError):
        pass
    try:
        stat = os.statvfs(shm_path)
        facts['shm_free_mb'] = int(stat.f_bavail * stat.f_frsize // MB)
    except (IOError, OSError, AttributeError):
        pass
    return facts


def parse_meminfo_mb(text):
    match = re.search(r'^MemTotal:\s+(\d+)\s*kB', text or '', re.MULTILINE)
    return int(match.group(1)) // 1024 if match else None


def parse_cpuinfo_count(text):
    count = len(re.findall(r'^processor\s*:', text or '', re.MULTILINE))
    return count or None


# ---------------------------------------------------------------------------------------
# The manager
# ---------------------------------------------------------------------------------------

_INDEX_QUERY = """
SELECT c.relname, n.nspname, c.relkind, t.relname, am.amname, i.indisvalid, i.indisready, i.indisunique,
       i.indexprs IS NOT NULL, pg_get_expr(i.indpred, i.indrelid), pg_get_indexdef(c.oid), c.reloptions,
       ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord),
       ARRAY(SELECT oc.opcname::text FROM unnest(i.indclass::oid[]) WITH ORDINALITY AS k(opc, ord)
             JOIN pg_opclass oc ON oc.oid = k.opc ORDER BY k.ord),
       tn.nspname, obj_description(c.oid, 'pg_class')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_class t ON t.oid = i.indrelid
LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace
LEFT JOIN pg_am am ON am.oid = c.relam
WHERE n.nspname = %s AND c.relname = %s
"""

_COLUMN_QUERY = """
SELECT a.attname, t.typname, a.atttypmod, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


class PgvectorIndexManager(object):
    """Ensure one pgvector index. ``conn`` is an open psycopg2 connection in autocommit mode."""

    def __init__(self, conn, params, check_mode=False, local_server=False, host_facts=None):
        self.conn = conn
        self.params = params
        self.check_mode = check_mode
        self.local_server = local_server
        self._host_facts = host_facts
        self.req = validate_params(params)
        self.executed = []
        self.warnings = []
        self.build_info = None
        self.build_seconds = None
        self.decisions = []
        self.deferred = False
        self.training = None
        self.search_settings = None
        self.recall = None

    # -- plumbing ---------------------------------------------------------------------------

    def _query(self, sql, args=None):
        cur = self.conn.cursor()
        try:
            cur.execute(sql, args)
            if cur.description is None:
                return []
            return cur.fetchall()
        finally:
            cur.close()

    def _one(self, sql, args=None):
        rows = self._query(sql, args)
        return rows[0] if rows else None

    def _text(self, sql, values):
        cur = self.conn.cursor()
        try:
            return cur.mogrify(sql, values or None).decode('utf-8')
        finally:
            cur.close()

    def _run(self, statement, cur=None):
        """Record one (sql, values) statement and execute it unless in check mode."""
        sql, values = statement
        self.executed.append(self._text(sql, values))
        if self.check_mode:
            return
        own = cur is None
        cur = cur or self.conn.cursor()
        try:
            cur.execute(sql, values or None)
        finally:
            if own:
                cur.close()

    # -- catalogue ---------------------------------------------------------------------------

    def read_extension(self):
        row = self._one("SELECT e.extversion, n.nspname FROM pg_extension e "
                        "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'")
        if row:
            return {'installed': True, 'version': parse_version(row[0]), 'schema': row[1]}
        avail = self._one("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
        schema = self._one('SELECT current_schema()')
        return {'installed': False, 'version': parse_version(avail[0]) if avail else None,
                'available': bool(avail), 'schema': schema[0] if schema else 'public'}

    def read_index(self, schema, name):
        row = self._one(_INDEX_QUERY, (schema, name))
        if not row:
            return None
        return {
            'name': row[0], 'schema': row[1], 'relkind': row[2], 'table': row[3], 'method': row[4],
            'valid': row[5] and row[6], 'unique': row[7], 'has_expressions': row[8], 'predicate': row[9],
            'indexdef': row[10], 'reloptions': row[11], 'columns': list(row[12] or []),
            'opclasses': list(row[13] or []), 'table_schema': row[14],
            'comment': row[15] if len(row) > 15 else None,
        }

    def read_table(self):
        req = self.req
        if not self._one('SELECT 1 FROM pg_namespace WHERE nspname = %s', (req['schema'],)):
            raise PgvectorIndexError('schema: %r does not exist in database %r' % (req['schema'], self._dbname()))
        row = self._one('SELECT c.oid, c.relkind, c.reltuples FROM pg_class c JOIN pg_namespace n '
                        'ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s',
                        (req['schema'], req['table']))
        if not row:
            raise PgvectorIndexError('table: %s.%s does not exist in database %r'
                                     % (req['schema'], req['table'], self._dbname()))
        oid, relkind, reltuples = row[0], row[1], row[2]
        if relkind not in ('r', 'p', 'm'):
            raise PgvectorIndexError('table: %s.%s is not a table or materialized view (relkind %r)'
                                     % (req['schema'], req['table'], relkind))
        columns = self._query(_COLUMN_QUERY, (oid,))
        found = None
        for attname, typname, typmod, fmt in columns:
            if attname == req['column']:
                found = {'type': typname, 'typmod': typmod, 'format': fmt,
                         'dims': typmod if typname in VECTOR_TYPES and typmod > 0 else None}
        if found is None:
            vector_cols = [c[0] for c in columns if c[1] in VECTOR_TYPES]
            raise PgvectorIndexError('column: %r does not exist in %s.%s; its vector columns: %s'
                                     % (req['column'], req['schema'], req['table'],
                                        ', '.join(vector_cols) or 'none'))
        return {'oid': oid, 'relkind': relkind, 'reltuples': reltuples, 'column': found}

    def _dbname(self):
        try:
            return self.conn.info.dbname
        except AttributeError:  # pragma: no cover - older psycopg2
            return self.params.get('db')

    def normalize_where(self, defn, opclass_schema):
        """Let the server normalise (and validate) the predicate.

        The exact index definition is created on an empty temporary copy of the table inside a
        transaction that is rolled back: nothing persists, and the server's own deparse of the
        predicate is what the existing index is compared with.
        """
        req = self.req
        cur = self.conn.cursor()
        try:
            cur.execute('BEGIN')
            try:
                cur.execute('CREATE TEMPORARY TABLE %s (LIKE %s)'
                            % (quote_ident(req['table']), qualify(req['schema'], req['table'])))
            except psycopg2.Error as exc:
                cur.execute('ROLLBACK')
                self.warnings.append('could not create a temporary table to normalise the where predicate '
                                     '(%s); comparing it as text' % str(exc).strip().splitlines()[0])
                return normalize_predicate_text(defn.get('where'))
            probe = dict(defn, schema=self._one_cur(cur, 'SELECT nspname FROM pg_namespace '
                                                    'WHERE oid = pg_my_temp_schema()'))
            sql, values = render_create(probe, opclass_schema, concurrently=False, index_name='aistack_probe')
            try:
                cur.execute(sql, values or None)
            except psycopg2.Error as exc:
                cur.execute('ROLLBACK')
                raise PgvectorIndexError('%s: the server rejected the index definition: %s'
                                         % ('where' if defn.get('where') else 'index definition',
                                            str(exc).strip()))
            cur.execute('SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i JOIN pg_class c '
                        'ON c.oid = i.indexrelid WHERE c.relname = %s AND c.relnamespace = pg_my_temp_schema()',
                        ('aistack_probe',))
            row = cur.fetchone()
            cur.execute('ROLLBACK')
            return row[0] if row else None
        finally:
            cur.close()

    @staticmethod
    def _one_cur(cur, sql, args=None):
        cur.execute(sql, args)
        row = cur.fetchone()
        return row[0] if row else None

    def count_rows(self, table):
        if table['reltuples'] is not None and table['reltuples'] >= 0:
            return int(table['reltuples'])
        row = self._one('SELECT count(*) FROM %s' % qualify(self.req['schema'], self.req['table']))
        return int(row[0]) if row else 0

    def element_size(self, column):
        col_type = column['type']
        if col_type != 'sparsevec' and column.get('dims'):
            return element_bytes(col_type, column['dims'])
        row = self._one('SELECT avg(pg_column_size(v)) FROM (SELECT %s AS v FROM %s LIMIT 1000) s'
                        % (quote_ident(self.req['column']), qualify(self.req['schema'], self.req['table'])))
        return int(row[0]) if row and row[0] is not None else 64

    def server_settings(self):
        rows = self._query("SELECT name, setting FROM pg_settings WHERE name IN ('maintenance_work_mem', "
                           "'max_worker_processes', 'max_parallel_workers', 'max_parallel_maintenance_workers', "
                           "'dynamic_shared_memory_type')")
        result = {}
        for name, setting in rows:
            if name == 'maintenance_work_mem':
                result['maintenance_work_mem_kb'] = int(setting)
            elif name == 'dynamic_shared_memory_type':
                result[name] = setting
            else:
                result[name] = int(setting)
        return result

    def host_facts(self):
        """Memory and CPUs of the database server: local reads, then parameters, then the server itself."""
        req = self.req
        if self._host_facts is not None:
            facts = dict(self._host_facts)
        elif self.local_server:
            facts = read_local_host_facts()
        else:
            facts = {'memory_mb': None, 'cpus': None, 'shm_free_mb': None, 'source': None}
            self._read_remote_facts(facts)
        if req.get('server_memory_mb'):
            facts['memory_mb'] = req['server_memory_mb']
            facts['source'] = 'parameters'
        if req.get('server_cpus'):
            facts['cpus'] = req['server_cpus']
            facts['source'] = 'parameters'
        return facts

    def _read_remote_facts(self, facts):
        """With superuser or pg_read_server_files, read /proc on the server host itself."""
        row = self._one("SELECT rolsuper OR pg_has_role(current_user, 'pg_read_server_files', 'USAGE') "
                        "FROM pg_roles WHERE rolname = current_user")
        if not row or not row[0]:
            return
        try:
            mem = self._one("SELECT pg_read_file('/proc/meminfo')")
            cpu = self._one("SELECT pg_read_file('/proc/cpuinfo')")
        except psycopg2.Error:
            return
        facts['memory_mb'] = parse_meminfo_mb(mem[0] if mem else '')
        facts['cpus'] = parse_cpuinfo_count(cpu[0] if cpu else '')
        if facts['memory_mb'] or facts['cpus']:
            facts['source'] = 'server /proc via pg_read_file'

    # -- the decision ------------------------------------------------------------------------

    def run(self):
        if self.req['state'] == 'absent':
            return self._absent()
        return self._present()

    def _absent(self):
        req = self.req
        existing = self.read_index(req['schema'], req['name'])
        before = {}
        if existing:
            if existing['relkind'] not in ('i', 'I'):
                raise PgvectorIndexError('name: %s.%s is not an index (relkind %r); nothing was dropped'
                                         % (req['schema'], req['name'], existing['relkind']))
            if existing['method'] not in METHODS:
                raise PgvectorIndexError('name: %s.%s is a %s index, not ivfflat/hnsw; pgvector_index drops '
                                         'only vector indexes' % (req['schema'], req['name'], existing['method']))
            if req['table'] and existing['table'] != req['table']:
                raise PgvectorIndexError('name: index %s.%s belongs to table %s, not %s; nothing was dropped'
                                         % (req['schema'], req['name'], existing['table'], req['table']))
            before = public_definition(existing_definition(existing))
            concurrently = req['concurrently'] and existing['relkind'] == 'i'
            if req['concurrently'] and not concurrently:
                self.warnings.append('indexes on partitioned tables cannot be dropped concurrently; '
                                     'dropping without CONCURRENTLY')
            self._execute_plan([('sql',) + render_drop(req['schema'], req['name'], concurrently=concurrently)],
                               transactional=not concurrently)
        return self._result(bool(existing), before, {}, {})

    def _present(self):
        req = self.req
        ext = self.read_extension()
        pre = []
        if not ext['installed']:
            if not req['create_extension']:
                raise PgvectorIndexError(
                    'the vector extension is not installed in database %r; set create_extension: true '
                    '(or run CREATE EXTENSION vector) first%s'
                    % (self._dbname(), '' if ext.get('available') else
                       ', after installing pgvector on the server (it is not available there)'))
            if not ext.get('available'):
                raise PgvectorIndexError('create_extension: pgvector is not installed on the database server '
                                         '(vector is missing from pg_available_extensions)')
            pre.append(render_create_extension())
        table = self.read_table()
        opclass = check_against_server(req, table['column'], ext['version'])
        if table['relkind'] == 'p' and req['concurrently']:
            raise PgvectorIndexError('concurrently: %s.%s is partitioned and PostgreSQL cannot build indexes on '
                                     'partitioned tables concurrently; set concurrently: false'
                                     % (req['schema'], req['table']))

        existing_row = self.read_index(req['schema'], req['name'])
        if existing_row:
            if existing_row['relkind'] not in ('i', 'I'):
                raise PgvectorIndexError('name: %s.%s already exists and is not an index (relkind %r); '
                                         'choose another name' % (req['schema'], req['name'],
                                                                  existing_row['relkind']))
            if existing_row['table'] != req['table'] or existing_row['table_schema'] != req['schema']:
                raise PgvectorIndexError('name: index %s.%s already exists on table %s.%s; choose another name'
                                         % (req['schema'], req['name'], existing_row['table_schema'],
                                            existing_row['table']))
            if existing_row['method'] not in METHODS:
                raise PgvectorIndexError('name: index %s.%s already exists as a %s index; pgvector_index '
                                         'replaces only ivfflat/hnsw indexes, choose another name'
                                         % (req['schema'], req['name'], existing_row['method']))

        desired = desired_definition(req, opclass, req['where'])
        if ext['installed']:
            desired['where'] = self.normalize_where(desired, ext['schema'])
        self.check_roles()
        ivfflat = req['method'] == 'ivfflat'
        rows = self.count_vectors(desired['where']) if ivfflat or req['recall'] else None
        if req['recall'] and req['recall_sample_size'] is not None and req['recall_sample_size'] > rows:
            raise PgvectorIndexError(
                'recall_sample_size: %d is larger than the %d rows (non-NULL %s) of %s.%s%s; give at most %d '
                'or leave it unset (then min(%d, rows) are sampled). Nothing was changed.'
                % (req['recall_sample_size'], rows, req['column'], req['schema'], req['table'],
                   ' matching the where predicate' if desired['where'] else '', rows, DEFAULT_RECALL_SAMPLE))
        if ivfflat and req['lists_auto']:
            desired['params']['lists'] = auto_lists(rows)
            self.decisions.append('lists: auto chose %d for %d rows (%s, bounded to 1..32768)'
                                  % (desired['params']['lists'], rows, auto_lists_rule(rows)))

        existing = existing_definition(existing_row) if existing_row else None
        before = public_definition(existing) if existing else {}
        trained_rows = parse_trained_rows(existing.get('comment')) if existing else None

        action = None
        if existing and existing['valid']:
            diffs = compare_definitions(existing, desired, ignore_params=('lists',) if req['lists_auto'] else ())
            if diffs:
                if req['recreate'] == 'never':
                    raise PgvectorIndexError(
                        'index %s.%s exists with a different definition (%s). Nothing was changed; set '
                        'recreate: on_change to rebuild it, or choose another name.'
                        % (req['schema'], req['name'], format_differences(diffs)),
                        differences=diffs, diff={'before': before, 'after': public_definition(desired)})
                action = 'recreate'
                self.decisions.append('recreate: the definition differs (%s)' % format_differences(diffs))
            else:
                action = self._retrain_decision(rows, trained_rows)
                if action is None:
                    kept = ''
                    if req['lists_auto']:
                        desired['params']['lists'] = existing['params']['lists']
                        kept = ' (lists: auto keeps the %d lists it was trained with)' % existing['params']['lists']
                    self.decisions.append('unchanged: index %s.%s matches the definition%s'
                                          % (req['schema'], req['name'], kept))
        elif existing:
            action = 'rebuild_invalid'
            self.warnings.append('index %s.%s is invalid (a failed or interrupted concurrent build); rebuilding it'
                                 % (req['schema'], req['name']))
            self.decisions.append('rebuild: the index is invalid')
        else:
            action = 'create'
            self.decisions.append('create: index %s.%s does not exist' % (req['schema'], req['name']))

        self.training = self._training_info(rows, desired, trained_rows) if ivfflat else None
        if action and ivfflat and rows < desired['params']['lists'] * req['min_rows_per_list']:
            return self._deferred(action, rows, desired, existing, before)
        if action is None:
            return self._finish(False, before, before, existing, None, ext, built=False)

        settings = self._build_settings(table, desired, ext)
        concurrently = req['concurrently']
        steps = [('sql',) + st for st in pre]
        steps.extend(('sql',) + render_set(k, v, local=not concurrently) for k, v in settings)
        create_name = None
        if action == 'rebuild_invalid':
            steps.append(('sql',) + render_drop(req['schema'], req['name'], concurrently=concurrently))
        elif action in ('recreate', 'retrain'):
            create_name, drop_leftover = self._temporary_name()
            if drop_leftover:
                steps.append(('sql',) + render_drop(req['schema'], create_name, concurrently=concurrently))
        steps.append(('build',) + render_create(desired, ext['schema'], concurrently, create_name))
        if create_name:
            steps.append(('sql',) + render_drop(req['schema'], req['name'], concurrently=concurrently))
            steps.append(('sql',) + render_rename(req['schema'], create_name, req['name']))
        if ivfflat:
            steps.append(('sql',) + render_comment(req['schema'], req['name'], rows, desired['params']['lists'],
                                                   'auto' if req['lists_auto'] else 'explicit'))
            self.training['trained_rows'] = rows
            self.training['retrain_at_rows'] = self._retrain_at(rows)
        self._execute_plan(steps, transactional=not concurrently,
                           cleanup=(req['schema'], create_name or req['name']) if concurrently else None)

        after = public_definition(desired)
        after_def = None
        if not self.check_mode:
            row = self.read_index(req['schema'], req['name'])
            after_def = existing_definition(row) if row else None
            after = public_definition(after_def)
        else:
            sql, values = render_create(desired, ext['schema'], False)
            after['indexdef'] = interpolate(sql, values)
            after['valid'] = None
        return self._finish(True, before, after, existing, after_def or desired, ext, built=True)

    # -- training, search settings, recall ---------------------------------------------------------

    def _retrain_at(self, trained_rows):
        factor = self.req['retrain_growth_factor']
        if factor is None or trained_rows is None:
            return None
        return int(math.floor(trained_rows * factor))

    def _retrain_decision(self, rows, trained_rows):
        """'retrain' when the opt-in growth factor says the table outgrew the index's training."""
        req = self.req
        factor = req['retrain_growth_factor']
        if req['method'] != 'ivfflat' or factor is None:
            return None
        if trained_rows is None:
            self.decisions.append('retrain: the index records no training row count (built outside this module '
                                  'or before it recorded one) and retrain_growth_factor is set; rebuilding it '
                                  'on the %d rows there now' % rows)
            return 'retrain'
        if rows > trained_rows * factor:
            self.decisions.append('retrain: the table grew from %d rows (when the index was trained) to %d, more '
                                  'than retrain_growth_factor %g times' % (trained_rows, rows, factor))
            return 'retrain'
        self.decisions.append('no retrain: %d rows, the index was trained on %d; rebuilt above %d rows'
                              % (rows, trained_rows, self._retrain_at(trained_rows)))
        return None

    def _training_info(self, rows, desired, trained_rows):
        req = self.req
        lists = desired['params']['lists']
        return {
            'rows': rows,
            'lists': lists,
            'lists_source': 'auto' if req['lists_auto'] else 'explicit',
            'min_rows_per_list': req['min_rows_per_list'],
            'rows_needed': lists * req['min_rows_per_list'],
            'trained_rows': trained_rows,
            'retrain_growth_factor': req['retrain_growth_factor'],
            'retrain_at_rows': self._retrain_at(trained_rows),
        }

    def _deferred(self, action, rows, desired, existing, before):
        req = self.req
        lists = desired['params']['lists']
        needed = lists * req['min_rows_per_list']
        what = {'create': 'not built', 'rebuild_invalid': 'not rebuilt (the invalid index stays)',
                'recreate': 'not rebuilt (the existing index stays)',
                'retrain': 'not re-trained (the existing index stays)'}[action]
        message = ('ivfflat index %s.%s %s: %s.%s has %d rows (non-NULL %s%s), fewer than the %d needed to train '
                   '%d list(s) (min_rows_per_list %d). An ivfflat index clusters the rows present when it is built and '
                   'never moves its centroids, so a build now would serve poor recall. Run this task again once the '
                   'table holds at least %d rows: it builds the index then.'
                   % (req['schema'], req['name'], what, req['schema'], req['table'], rows, req['column'],
                      ', matching the predicate' if desired['where'] else '', needed, lists, req['min_rows_per_list'],
                      needed))
        self.warnings.append(message)
        self.decisions.append('deferred: ' + message)
        self.deferred = True
        if existing and existing['valid']:
            return self._finish(False, before, before, existing, None, None, built=False)
        return self._finish(False, before, before, None, None, None, built=False)

    def _finish(self, changed, before, after, existing, after_def, ext, built):
        """Search recommendation, recall check and search defaults for the index now in place."""
        req = self.req
        current = after_def if built else (existing if existing and existing['valid'] else None)
        if current is None:
            if req['recall']:
                self.recall = {'measured': False, 'reason': 'no index to measure'}
            if req['search_defaults_database'] or req['search_defaults_roles']:
                self.decisions.append('search defaults: not set, there is no index yet')
            return self._result(changed, before, after)
        method = current['method']
        setting = SEARCH_SETTING[method]
        lists = current['params'].get('lists')
        k = req['recall_k']
        if method == 'ivfflat':
            value, source = recommended_probes(lists), 'sqrt(lists) = sqrt(%d)' % lists
        else:
            value, source = recommended_ef_search(k), "pgvector's default 40, at least recall_k %d" % k
        if req['recall']:
            if self.check_mode and built:
                self.recall = {'measured': False,
                               'reason': 'check mode: the index would be built first, so recall is measured '
                                         'on the real run'}
                self.decisions.append('recall: not measured in check mode (the index would be built first); '
                                      'the search setting below is the unmeasured recommendation')
            else:
                value, source = self._check_recall(current, ext, setting, value, source)
        self.search_settings = {setting: value, 'source': source}
        self.decisions.append('search: %s = %s (%s)' % (setting, value, source))
        changed = self._apply_search_defaults(setting, value) or changed
        return self._result(changed, before, after)

    def _check_recall(self, current, ext, setting, value, source):
        req = self.req
        rows = self.count_vectors(current.get('where'))
        sample = req['recall_sample_size'] or min(DEFAULT_RECALL_SAMPLE, rows)
        if sample < 1:
            self.recall = {'measured': False, 'reason': 'the table has no rows to sample'}
            self.decisions.append('recall: not measured, the table has no rows')
            return value, source
        k = req['recall_k']
        find_minimum = req['min_recall'] is not None
        candidates = search_candidates(current['method'], current['params'].get('lists') or 1, k, find_minimum)
        schema = (ext or {}).get('schema') or self.read_extension()['schema']
        tried = self.measure_recall(current, schema, setting, candidates, k, sample, req['min_recall'])
        best = tried[-1]
        self.recall = {'measured': True, 'k': k, 'sample_size': sample, 'rows': rows, 'setting': setting,
                       'value': best['value'], 'recall_at_k': best['recall_at_k'], 'tried': tried,
                       'min_recall': req['min_recall']}
        self.decisions.append('recall: recall@%d = %.4f at %s = %s (%d sampled rows as queries, exact scan in the '
                              'same transaction)' % (k, best['recall_at_k'], setting, best['value'], sample))
        if find_minimum and best['recall_at_k'] < req['min_recall']:
            raise PgvectorIndexError(
                'min_recall: index %s.%s reaches recall@%d = %.4f at best (%s = %s, the highest tried; %d sampled '
                'rows), below min_recall %g. Measured: %s.'
                % (req['schema'], req['name'], k, best['recall_at_k'], setting, best['value'], sample,
                   req['min_recall'], ', '.join('%s=%s: %.4f' % (setting, t['value'], t['recall_at_k'])
                                                for t in tried)),
                recall=self.recall, recall_at_k=best['recall_at_k'], training=self.training,
                decisions=list(self.decisions))
        if find_minimum:
            return best['value'], 'measured: the smallest value tried reaching min_recall %g' % req['min_recall']
        return value, source

    def measure_recall(self, current, ext_schema, setting, candidates, k, sample, min_recall):
        """recall@k of the index against an exact scan, one REPEATABLE READ snapshot, nothing written.

        Rows sampled with a fixed seed serve as queries; the exact top-k comes from a sequential scan
        (index scans off), the index's from the index (sequential scans off, the plan checked to use
        this index), for each candidate value of the search setting until one reaches ``min_recall``.
        """
        req = self.req
        table = qualify(req['schema'], req['table'])
        col = quote_ident(req['column'])
        op = 'OPERATOR(%s.%s)' % (quote_ident(ext_schema), distance_operator(current['opclass']))
        pred = (' AND (%s)' % current['where'].replace('%', '%%')) if current.get('where') else ''
        probe = '(SELECT %s FROM %s WHERE ctid = %%s::tid)' % (col, table)
        query = ('SELECT ctid::text, (%s %s %s)::float8 FROM %s WHERE %s IS NOT NULL%s ORDER BY %s %s %s LIMIT %d'
                 % (col, op, probe, table, col, pred, col, op, probe, k))
        cur = self.conn.cursor()
        try:
            cur.execute('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
            try:
                cur.execute('SET LOCAL max_parallel_workers_per_gather = 0')
                cur.execute('SELECT setseed(%s)', (RECALL_SEED,))
                cur.execute('SELECT ctid::text FROM %s WHERE %s IS NOT NULL%s ORDER BY random() LIMIT %%s'
                            % (table, col, pred), (sample,))
                samples = [row[0] for row in cur.fetchall()]
                if not samples:
                    raise PgvectorIndexError('recall_check: the table has no rows to sample (emptied while the '
                                             'task ran?); recall was not measured')
                for name in ('enable_indexscan', 'enable_bitmapscan', 'enable_indexonlyscan'):
                    cur.execute('SET LOCAL %s = off' % name)
                exact = {}
                for tid in samples:
                    cur.execute(query, (tid, tid))
                    exact[tid] = cur.fetchall()
                cur.execute('SET LOCAL enable_indexscan = on')
                cur.execute('SET LOCAL enable_seqscan = off')
                cur.execute('EXPLAIN (FORMAT JSON) ' + query, (samples[0], samples[0]))
                used = plan_index_names(cur.fetchone()[0])
                if req['name'] not in used:
                    raise PgvectorIndexError(
                        'recall_check: the planner did not use index %s.%s for the nearest-neighbour query '
                        '(it chose %s); recall was not measured'
                        % (req['schema'], req['name'], ', '.join(sorted(used)) or 'no index'))
                tried = []
                for value in candidates:
                    cur.execute('SET LOCAL %s = %%s' % setting, (str(value),))
                    per_query = []
                    for tid in samples:
                        cur.execute(query, (tid, tid))
                        per_query.append(recall_of_query(exact[tid], cur.fetchall()))
                    recall = round(sum(per_query) / len(per_query), 4)
                    tried.append({'value': value, 'recall_at_k': recall})
                    if min_recall is None or recall >= min_recall:
                        break
                return tried
            finally:
                cur.execute('ROLLBACK')
        except psycopg2.Error as exc:
            raise PgvectorIndexError('recall_check: measuring recall failed: %s' % str(exc).strip())
        finally:
            cur.close()

    def _apply_search_defaults(self, setting, value):
        """ALTER DATABASE / ROLE ... IN DATABASE ... SET <setting>, only where it differs. True when changed."""
        req = self.req
        targets = ([None] if req['search_defaults_database'] else []) + list(req['search_defaults_roles'])
        if not targets:
            return False
        dbname = self._dbname()
        current = self.read_search_defaults()
        changed = False
        applied = []
        for role in targets:
            have = current.get(role, {}).get(setting)
            where = 'role %s in database %s' % (role, dbname) if role else 'database %s' % dbname
            if have == str(value):
                self.decisions.append('search defaults: %s already has %s = %s' % (where, setting, value))
            else:
                self.decisions.append('search defaults: %s %s %s = %s (was %s)'
                                      % (where, 'would get' if self.check_mode else 'gets', setting, value,
                                         have if have is not None else 'unset'))
                self._run(render_search_default(setting, value, dbname, role))
                changed = True
            applied.append({'database': dbname, 'role': role, 'setting': setting, 'value': value,
                            'before': have, 'changed': have != str(value)})
        self.search_settings['defaults'] = applied
        return changed

    def read_search_defaults(self):
        """{None: {setting: value}} for the database, {role: {...}} for role-in-database settings."""
        rows = self._query('SELECT r.rolname, s.setconfig FROM pg_db_role_setting s '
                           'LEFT JOIN pg_roles r ON r.oid = s.setrole '
                           'WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())')
        return dict((role, parse_setconfig(config)) for role, config in rows)

    def check_roles(self):
        roles = self.req['search_defaults_roles']
        if not roles:
            return
        found = set(row[0] for row in self._query('SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)',
                                                  (list(roles),)))
        missing = [role for role in roles if role not in found]
        if missing:
            raise PgvectorIndexError('search_defaults_roles: role(s) %s do not exist; nothing was changed'
                                     % ', '.join(missing))

    def count_vectors(self, where):
        """Rows an index on the column would hold: non-NULL values, matching the predicate if any."""
        sql = 'SELECT count(%s) FROM %s' % (quote_ident(self.req['column']),
                                            qualify(self.req['schema'], self.req['table']))
        if where:
            sql += ' WHERE ' + where
        row = self._one(sql)
        return int(row[0]) if row else 0

    def _temporary_name(self):
        """Name for the replacement index; (name, True) when an invalid leftover of ours must go first."""
        req = self.req
        tmp = truncate_name(req['name'], NAME_MAX_BYTES - len(TMP_SUFFIX)) + TMP_SUFFIX
        row = self.read_index(req['schema'], tmp)
        if not row:
            return tmp, False
        if (row['relkind'] in ('i', 'I') and row['table'] == req['table'] and row['method'] in METHODS
                and not row['valid']):
            self.warnings.append('dropping %s.%s, an invalid index left by an interrupted rebuild'
                                 % (req['schema'], tmp))
            return tmp, True
        raise PgvectorIndexError('name: the temporary name %s.%s used to rebuild the index is taken; '
                                 'drop or rename that relation first' % (req['schema'], tmp))

    def _build_settings(self, table, desired, ext):
        req = self.req
        column = table['column']
        rows = self.count_rows(table)
        elem = self.element_size(column)
        facts = self.host_facts()
        settings, info = plan_build_settings(
            desired['method'], rows, elem, desired['params'], ext['version'],
            req['maintenance_work_mem_kb'], req['workers'], self.server_settings(), facts)
        self.build_info = info
        return settings

    def _execute_plan(self, steps, transactional, cleanup=None):
        """Run (kind, sql, values) steps: one transaction when ``transactional``, else one by one.

        ``kind`` is 'build' for the CREATE INDEX (timed) and 'sql' for everything else.
        """
        if self.check_mode:
            for _kind, sql, values in steps:
                self._run((sql, values))
            return
        if transactional:
            self.conn.autocommit = False
        cur = self.conn.cursor()
        try:
            for kind, sql, values in steps:
                started = time.time()
                self._run((sql, values), cur)
                if kind == 'build':
                    self.build_seconds = round(time.time() - started, 3)
            if transactional:
                self.conn.commit()
        except psycopg2.Error as exc:
            failed = self.executed[-1] if self.executed else ''
            if transactional:
                self.conn.rollback()
                detail = 'the transaction was rolled back, nothing was changed'
            else:
                detail = self._cleanup_after_failure(cleanup)
            raise PgvectorIndexError('statement failed: %s: %s (%s)' % (failed, str(exc).strip(), detail))
        finally:
            cur.close()
            if transactional:
                self.conn.autocommit = True

    def _cleanup_after_failure(self, cleanup):
        """A failed CREATE INDEX CONCURRENTLY leaves an invalid index behind: drop it."""
        if not cleanup:
            return 'no cleanup needed'
        schema, name = cleanup
        row = self.read_index(schema, name)
        if row and not row['valid']:
            try:
                sql, values = render_drop(schema, name, concurrently=True, if_exists=True)
                self._query(sql, values)
                self.executed.append(self._text(sql, values))
                return 'the invalid index it left was dropped'
            except psycopg2.Error as exc:
                return 'the invalid index it left could not be dropped: %s' % str(exc).strip()
        return 'no invalid index was left behind'

    def _result(self, changed, before, after, before_def=None, after_def=None):
        result = {
            'changed': changed,
            'executed_queries': list(self.executed),
            'index': after,
            'build_settings': self.build_info or {},
            'build_seconds': self.build_seconds,
            'diff': {'before': before, 'after': after},
            'deferred': self.deferred,
            'decisions': list(self.decisions),
            'training': self.training or {},
            'search_settings': self.search_settings or {},
            'recall': self.recall or {},
            'recall_at_k': (self.recall or {}).get('recall_at_k'),
        }
        if self.warnings:
            result['warnings'] = list(self.warnings)
        return result

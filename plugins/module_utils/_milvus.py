# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Milvus index management for aistack.infra (private: not a public API).

``MILVUS_CONNECTION_ARGS`` is merged into the argument spec of every Milvus module;
``MilvusIndexManager`` does the work of ``milvus_index``: it validates the whole request
(offline first, then against the collection schema and the server), plans the API calls,
and runs them unless in check mode.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import logging
import re
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

try:
    from pymilvus import MilvusClient
    HAS_PYMILVUS = True
    PYMILVUS_IMPORT_ERROR = None
except ImportError:
    MilvusClient = None
    HAS_PYMILVUS = False
    PYMILVUS_IMPORT_ERROR = traceback.format_exc()


MILVUS_CONNECTION_ARGS = dict(
    uri=dict(type='str', default='http://127.0.0.1:19530', fallback=(env_fallback, ['MILVUS_URI'])),
    token=dict(type='str', no_log=True, fallback=(env_fallback, ['MILVUS_TOKEN'])),
    user=dict(type='str', fallback=(env_fallback, ['MILVUS_USER'])),
    password=dict(type='str', no_log=True, fallback=(env_fallback, ['MILVUS_PASSWORD'])),
    db_name=dict(type='str', default='default', fallback=(env_fallback, ['MILVUS_DB_NAME'])),
    secure=dict(type='bool'),
    server_pem_path=dict(type='path'),
    server_name=dict(type='str'),
    ca_pem_path=dict(type='path'),
    client_pem_path=dict(type='path'),
    client_key_path=dict(type='path', no_log=False),
    timeout=dict(type='float', default=30.0),
)
MILVUS_MUTUALLY_EXCLUSIVE = [('token', 'user'), ('token', 'password')]
MILVUS_REQUIRED_TOGETHER = [('user', 'password'), ('client_pem_path', 'client_key_path')]

INT_MAX = 2147483647

# Vector field kinds, from the field's DataType name.
FIELD_KINDS = {
    'FLOAT_VECTOR': 'float',
    'FLOAT16_VECTOR': 'float',
    'BFLOAT16_VECTOR': 'float',
    'BINARY_VECTOR': 'binary',
    'SPARSE_FLOAT_VECTOR': 'sparse',
    'INT8_VECTOR': 'int8',
}

# Metric types by field kind.
METRICS = {
    'float': ('L2', 'IP', 'COSINE'),
    'int8': ('L2', 'IP', 'COSINE'),
    'binary': ('HAMMING', 'JACCARD', 'SUBSTRUCTURE', 'SUPERSTRUCTURE'),
    'sparse': ('IP',),
}
METRIC_TYPES = ('L2', 'IP', 'COSINE', 'HAMMING', 'JACCARD', 'SUBSTRUCTURE', 'SUPERSTRUCTURE')
# Metrics that only one index type accepts.
METRIC_ONLY_WITH = {'SUBSTRUCTURE': ('BIN_FLAT',), 'SUPERSTRUCTURE': ('BIN_FLAT',)}


def _p(kind, required=False, low=None, high=None, choices=None, default=None):
    return dict(kind=kind, required=required, low=low, high=high, choices=choices, default=default)


_NLIST = _p('int', True, 1, 65536)
# Build parameters per index type, with the ranges Milvus 2.3 enforces (knowhere's configs,
# checked against a 2.3.5 server). ``since`` is the first server version with the type;
# ``full_build`` types are absent from the "lite" standalone build (no DiskANN, no GPU).
INDEX_TYPES = {
    'FLAT': dict(kinds=('float',), params={}),
    'IVF_FLAT': dict(kinds=('float',), params={'nlist': _NLIST}),
    'IVF_SQ8': dict(kinds=('float',), params={'nlist': _NLIST}),
    'IVF_PQ': dict(kinds=('float',), params={'nlist': _NLIST, 'm': _p('int', True, 1, 65536),
                                             'nbits': _p('int', False, 1, 64, default=8)}),
    'HNSW': dict(kinds=('float', 'binary', 'int8'), params={'M': _p('int', True, 2, 2048),
                                                            'efConstruction': _p('int', True, 1, INT_MAX)}),
    'DISKANN': dict(kinds=('float',), params={}, full_build=True),
    'SCANN': dict(kinds=('float',), params={'nlist': _NLIST, 'with_raw_data': _p('bool', default=True)}, since=(2, 3)),
    'AUTOINDEX': dict(kinds=('float', 'binary', 'sparse', 'int8'), params={}),
    'BIN_FLAT': dict(kinds=('binary',), params={}),
    'BIN_IVF_FLAT': dict(kinds=('binary',), params={'nlist': _NLIST}),
    'SPARSE_INVERTED_INDEX': dict(kinds=('sparse',), params={'drop_ratio_build': _p('float', False, 0.0, 1.0)}, since=(2, 4)),
    'SPARSE_WAND': dict(kinds=('sparse',), params={'drop_ratio_build': _p('float', False, 0.0, 1.0)}, since=(2, 4)),
    'GPU_IVF_FLAT': dict(kinds=('float',), params={'nlist': _NLIST}, since=(2, 3), full_build=True),
    'GPU_IVF_PQ': dict(kinds=('float',), params={'nlist': _NLIST, 'm': _p('int', True, 1, 65536),
                                                 'nbits': _p('int', False, 1, 64, default=8)},
                       since=(2, 3), full_build=True),
    'GPU_CAGRA': dict(kinds=('float',), params={'intermediate_graph_degree': _p('int', False, 1, 1024),
                                                'graph_degree': _p('int', False, 1, 1024),
                                                'build_algo': _p('str', choices=('IVF_PQ', 'NN_DESCENT')),
                                                'cache_dataset_on_device': _p('bool')},
                      since=(2, 4), full_build=True),
    'GPU_BRUTE_FORCE': dict(kinds=('float',), params={}, since=(2, 4), full_build=True),
}
INDEX_TYPE_NAMES = tuple(INDEX_TYPES)

# Keys of describe_index() that are not build parameters.
_DESCRIBE_META = frozenset(('field_name', 'index_name', 'index_type', 'metric_type', 'total_rows',
                            'indexed_rows', 'pending_index_rows', 'state', 'index_state_fail_reason', 'params'))


class MilvusIndexError(Exception):
    """A problem the user can act on; main() turns it into fail_json(msg=...)."""

    def __init__(self, msg, **details):
        super(MilvusIndexError, self).__init__(msg)
        self.msg = msg
        self.details = details


# --------------------------------------------------------------------------- values

def _fmt_range(spec):
    if spec['kind'] == 'bool':
        return 'true or false'
    if spec['choices']:
        return 'one of ' + ', '.join(spec['choices'])
    if spec['kind'] == 'float':
        return 'a number from %s up to (not including) %s' % (spec['low'], spec['high'])
    return 'an integer from %s to %s' % (spec['low'], spec['high'])


def coerce_param(index_type, name, value, spec):
    """Return ``value`` converted to the type of ``spec``, or raise MilvusIndexError."""
    where = "params.%s for index_type %s" % (name, index_type)
    bad = MilvusIndexError("%s must be %s, got %r" % (where, _fmt_range(spec), value))
    kind = spec['kind']
    if kind == 'bool':
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ('true', 'false'):
            return value.strip().lower() == 'true'
        raise bad
    if kind == 'str':
        text = str(value).strip().upper()
        if spec['choices'] and text not in spec['choices']:
            raise bad
        return text
    if isinstance(value, bool):
        raise bad
    try:
        if kind == 'int':
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            number = int(str(value).strip()) if not isinstance(value, (int, float)) else int(value)
        else:
            number = float(value)
    except (TypeError, ValueError):
        raise bad
    if kind == 'int' and not spec['low'] <= number <= spec['high']:
        raise bad
    if kind == 'float' and not spec['low'] <= number < spec['high']:
        raise bad
    return number


def _guess(value):
    """Best-effort typing of a parameter of an unknown type (Milvus returns every value as a string)."""
    if isinstance(value, (bool, int, float)):
        return value
    text = str(value).strip()
    if text.lower() in ('true', 'false'):
        return text.lower() == 'true'
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def validate_params(index_type, params):
    """Check ``params`` against the known build parameters of ``index_type``; return them typed."""
    specs = INDEX_TYPES[index_type]['params']
    params = params or {}
    unknown = sorted(set(params) - set(specs))
    if unknown:
        if specs:
            described = ['%s (%s%s)' % (k, _fmt_range(s), ', required' if s['required'] else '')
                         for k, s in sorted(specs.items())]
            allowed = 'allowed: ' + ', '.join(described)
        else:
            allowed = 'it takes no build parameters'
        raise MilvusIndexError("params: unknown parameter(s) %s for index_type %s; %s"
                               % (', '.join(unknown), index_type, allowed))
    missing = sorted(k for k, s in specs.items() if s['required'] and params.get(k) is None)
    if missing:
        raise MilvusIndexError("params: index_type %s requires %s"
                               % (index_type, ', '.join('%s (%s)' % (k, _fmt_range(specs[k])) for k in missing)))
    return dict((k, coerce_param(index_type, k, v, specs[k])) for k, v in params.items() if v is not None)


def canonical_params(index_type, params):
    """Typed view of parameters as the server reports them (strings) or as the user gave them."""
    specs = INDEX_TYPES.get(index_type, {}).get('params', {})
    out = {}
    for key, value in (params or {}).items():
        if key in specs:
            try:
                out[key] = coerce_param(index_type, key, value, dict(specs[key], low=float('-inf'), high=float('inf')))
                continue
            except MilvusIndexError:
                pass
        out[key] = _guess(value)
    return out


def parse_version(text):
    """``'v2.3.5-lite'`` -> ``((2, 3, 5), 'lite')``; unknown -> ``(None, '')``."""
    match = re.match(r'^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+](.*))?$', str(text or '').strip())
    if not match:
        return None, ''
    return (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)), (match.group(4) or '')


def definition_from_describe(info):
    """Turn a describe_index() dict into {index_name, field, index_type, metric_type, params}."""
    index_type = str(info.get('index_type', '')).upper()
    raw = dict((k, v) for k, v in info.items() if k not in _DESCRIBE_META)
    nested = info.get('params')
    if isinstance(nested, str):
        try:
            nested = json.loads(nested)
        except ValueError:
            nested = None
    if isinstance(nested, dict):
        for key, value in nested.items():
            if key not in ('index_type', 'metric_type'):
                raw[key] = value
    return dict(
        index_name=info.get('index_name'),
        field=info.get('field_name'),
        index_type=index_type,
        metric_type=str(info.get('metric_type', '')).upper(),
        params=canonical_params(index_type, raw),
    )


def compare_definitions(current, desired, compare_name=True):
    """List of (key, current, desired) for every difference; params are compared one by one."""
    diffs = []
    keys = ('index_name', 'index_type', 'metric_type') if compare_name else ('index_type', 'metric_type')
    for key in keys:
        if current.get(key) != desired.get(key):
            diffs.append((key, current.get(key), desired.get(key)))
    cur_p = _with_defaults(current.get('index_type'), current.get('params'))
    want_p = _with_defaults(desired.get('index_type'), desired.get('params'))
    for key in sorted(set(cur_p) | set(want_p)):
        if cur_p.get(key) != want_p.get(key):
            diffs.append(('params.' + key, cur_p.get(key), want_p.get(key)))
    return diffs


def _with_defaults(index_type, params):
    """Fill the server-side defaults (IVF_PQ nbits=8...) so that 'unset' and 'the default' compare equal."""
    out = dict(params or {})
    for key, spec in INDEX_TYPES.get(index_type, {}).get('params', {}).items():
        if spec['default'] is not None and out.get(key) is None:
            out[key] = spec['default']
    return out


def format_differences(diffs):
    return '; '.join('%s: %s (current) != %s (requested)' % (key, _show(cur), _show(want)) for key, cur, want in diffs)


def _show(value):
    return 'unset' if value is None else repr(value)


def _call(name, **kwargs):
    """An API call in words: ``create_index(collection='docs', field='vec', ...)``."""
    return '%s(%s)' % (name, ', '.join('%s=%r' % (k, v) for k, v in kwargs.items()))


# --------------------------------------------------------------------------- connection

def connect(params, error=MilvusIndexError, **overrides):
    """A MilvusClient for the connection options in ``params`` (MILVUS_CONNECTION_ARGS), with
    ``overrides`` (db_name, token...) on top; ``error`` is raised, naming the address, when it fails.
    A ``token`` override replaces the user/password login of ``params``."""
    p = dict(params)
    if 'token' in overrides:
        p.pop('user', None)
        p.pop('password', None)
    p.update(overrides)
    kwargs = dict(uri=p.get('uri') or 'http://127.0.0.1:19530', db_name=p.get('db_name') or 'default',
                  timeout=float(p.get('timeout') or 30.0))
    if p.get('token'):
        kwargs['token'] = p['token']
    if p.get('user'):
        kwargs['user'] = p['user']
        kwargs['password'] = p.get('password') or ''
    if p.get('secure') is not None:
        kwargs['secure'] = p['secure']
    for key in ('server_pem_path', 'server_name', 'ca_pem_path', 'client_pem_path', 'client_key_path'):
        if p.get(key):
            kwargs[key] = p[key]
    logging.getLogger('pymilvus').setLevel(logging.CRITICAL)
    try:
        return MilvusClient(**kwargs)
    except Exception as exc:  # pymilvus raises MilvusException, grpc errors, ValueError...
        failure = error("cannot connect to Milvus at %s (db_name=%s): %s"
                        % (kwargs['uri'], kwargs['db_name'], _reason(exc)))
        failure.auth_failed = is_auth_failure(exc)
        raise failure


def is_auth_failure(exc):
    """True when ``exc`` (or an exception it was raised from) is the server refusing the credentials."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code = getattr(exc, 'code', None)
        if callable(code):
            try:
                code = code()
            except Exception:  # a grpc call object that is not finished: no code to read
                code = None
        if getattr(code, 'name', None) == 'UNAUTHENTICATED' or 'auth check failure' in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# --------------------------------------------------------------------------- manager

class MilvusIndexManager(object):
    """Ensure (or remove) the index of one vector field, the way ``milvus_index`` documents it."""

    def __init__(self, params, check_mode=False, client=None, sleep=time.sleep, clock=time.monotonic):
        self.p = params
        self.check_mode = check_mode
        self._client = client
        self._sleep = sleep
        self._clock = clock
        self.timeout = float(params.get('timeout') or 30.0)
        self.collection = params['collection']
        self.field = params['field']
        self.name_explicit = bool(params.get('index_name'))
        self.index_name = params.get('index_name') or self.field
        self.state = params.get('state') or 'present'
        self.actions = []
        self.server_version = None
        self.desired = None

    # ---- offline validation (nothing contacted yet)
    def validate_request(self):
        p = self.p
        if self.state == 'absent':
            if p.get('load'):
                raise MilvusIndexError("load=true cannot be combined with state=absent: "
                                       "a collection without an index cannot be loaded")
            return None
        index_type = str(p.get('index_type') or '').upper()
        metric = str(p.get('metric_type') or '').upper()
        if index_type not in INDEX_TYPES:
            raise MilvusIndexError("index_type %r is not supported; allowed values: %s"
                                   % (p.get('index_type'), ', '.join(INDEX_TYPE_NAMES)))
        if metric not in METRIC_TYPES:
            raise MilvusIndexError("metric_type %r is not supported; allowed values: %s"
                                   % (p.get('metric_type'), ', '.join(METRIC_TYPES)))
        if metric in METRIC_ONLY_WITH and index_type not in METRIC_ONLY_WITH[metric]:
            raise MilvusIndexError("metric_type %s works only with index_type %s, not %s"
                                   % (metric, ', '.join(METRIC_ONLY_WITH[metric]), index_type))
        if p.get('params') is not None and not isinstance(p.get('params'), dict):
            raise MilvusIndexError("params must be a dictionary, got %r" % (p.get('params'),))
        if (p.get('wait_timeout') or 0) < 0:
            raise MilvusIndexError("wait_timeout must be 0 (do not wait) or a number of seconds, got %r"
                                   % p.get('wait_timeout'))
        self.desired = dict(index_name=self.index_name, field=self.field, index_type=index_type,
                            metric_type=metric, params=validate_params(index_type, p.get('params')))
        return self.desired

    # ---- connection
    @property
    def client(self):
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self):
        return connect(self.p, MilvusIndexError, timeout=self.timeout)

    def close(self):
        """Release the connection (pymilvus shares channels between clients of the same address)."""
        if self._client is not None and hasattr(self._client, 'close'):
            try:
                self._client.close()
            except Exception:  # closing is best effort: the work is done or has failed already
                pass
        self._client = None

    def _api(self, what, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MilvusIndexError:
            raise
        except Exception as exc:
            raise MilvusIndexError("%s failed: %s" % (what, _reason(exc)))

    # ---- reading the server
    def inspect(self):
        """Validate the request against the server and the schema; return (current, loaded)."""
        c = self.client
        version = self._api('get_server_version', c.get_server_version)
        self.server_version = version
        if not self._api('has_collection', c.has_collection, self.collection, timeout=self.timeout):
            raise MilvusIndexError("collection %r does not exist in database %r; create it first (collections: %s)"
                                   % (self.collection, self.p.get('db_name') or 'default',
                                      ', '.join(sorted(self._api('list_collections', c.list_collections))) or 'none'))
        schema = self._api('describe_collection', c.describe_collection, self.collection, timeout=self.timeout)
        fields = dict((f.get('name'), f) for f in schema.get('fields', []))
        if self.field not in fields:
            raise MilvusIndexError("field %r does not exist in collection %r; its fields are: %s"
                                   % (self.field, self.collection, ', '.join(sorted(fields))))
        field = fields[self.field]
        type_name = getattr(field.get('type'), 'name', str(field.get('type')))
        kind = FIELD_KINDS.get(type_name)
        if kind is None:
            vectors = sorted(n for n, f in fields.items()
                             if getattr(f.get('type'), 'name', str(f.get('type'))) in FIELD_KINDS)
            raise MilvusIndexError("field %r of collection %r is %s, not a vector field; vector fields: %s"
                                   % (self.field, self.collection, type_name, ', '.join(vectors) or 'none'))
        dim = (field.get('params') or {}).get('dim')
        if self.desired is not None:
            self._check_compatible(kind, type_name, dim, version)
        current = self._current_index()
        loaded = self._loaded()
        return current, loaded

    def _check_compatible(self, kind, type_name, dim, version):
        d = self.desired
        itype, metric = d['index_type'], d['metric_type']
        spec = INDEX_TYPES[itype]
        if kind not in spec['kinds']:
            allowed = sorted(n for n, s in INDEX_TYPES.items() if kind in s['kinds'])
            raise MilvusIndexError("index_type %s cannot index field %r (%s); allowed for this field: %s"
                                   % (itype, self.field, type_name, ', '.join(allowed)))
        if metric not in METRICS[kind]:
            raise MilvusIndexError("metric_type %s cannot be used on field %r (%s); allowed: %s"
                                   % (metric, self.field, type_name, ', '.join(METRICS[kind])))
        if itype in ('IVF_PQ', 'GPU_IVF_PQ') and dim:
            m = d['params']['m']
            if int(dim) % m:
                divisors = [str(i) for i in range(1, int(dim) + 1) if int(dim) % i == 0]
                raise MilvusIndexError("params.m=%d for IVF_PQ must divide the field's dimension %s; allowed: %s"
                                       % (m, dim, ', '.join(divisors)))
        number, flavour = parse_version(version)
        if number is not None:
            since = spec.get('since')
            if since and number[:2] < since:
                raise MilvusIndexError("index_type %s needs Milvus %s or later; the server is %s"
                                       % (itype, '.'.join(str(x) for x in since), version))
            if spec.get('full_build') and 'lite' in flavour:
                usable = sorted(n for n, s in INDEX_TYPES.items()
                                if kind in s['kinds'] and not s.get('full_build')
                                and not (s.get('since') and number[:2] < s['since']))
                raise MilvusIndexError("index_type %s is not available on this server (%s: the lite build has no "
                                       "DiskANN or GPU indexes); usable here: %s" % (itype, version, ', '.join(usable)))

    def _current_index(self):
        c = self.client
        names = self._api('list_indexes', c.list_indexes, self.collection, field_name=self.field)
        if not names:
            return None
        info = self._api('describe_index', c.describe_index, self.collection, names[0], timeout=self.timeout)
        if not info:
            return None
        current = definition_from_describe(info)
        current['field'] = current.get('field') or self.field
        current['build'] = _build_state(info)
        return current

    def _loaded(self):
        res = self._api('get_load_state', self.client.get_load_state, self.collection, timeout=self.timeout)
        state = res.get('state') if isinstance(res, dict) else res
        return getattr(state, 'name', str(state)) in ('Loaded', 'Loading')

    # ---- planning and running
    def run(self):
        self.validate_request()
        current, loaded = self.inspect()
        if self.state == 'absent':
            return self._absent(current, loaded)
        return self._present(current, loaded)

    def _present(self, current, loaded):
        d = self.desired
        want_load = bool(self.p.get('load'))
        wait = float(self.p.get('wait_timeout') or 0)
        steps = []
        if current is not None:
            diffs = compare_definitions(current, d, compare_name=self.name_explicit)
        else:
            diffs = []
        recreate = current is not None and bool(diffs)
        if recreate and self.p.get('recreate', 'never') != 'on_change':
            raise MilvusIndexError(
                "index %r on %s.%s differs from the requested definition: %s. Nothing was changed; set "
                "recreate=on_change to release, drop and rebuild it"
                % (current['index_name'], self.collection, self.field, format_differences(diffs)),
                differences=[dict(key=k, current=cur, requested=want) for k, cur, want in diffs],
                index=_public(current, loaded, self.collection))
        build = current is None or recreate
        if recreate:
            if loaded:
                steps.append((_call('release_collection', collection=self.collection), self._release))
            steps.append((_call('drop_index', collection=self.collection, index_name=current['index_name']),
                          lambda: self._drop(current['index_name'])))
        if build:
            steps.append((_call('create_index', collection=self.collection, field=self.field,
                                index_name=d['index_name'], index_type=d['index_type'],
                                metric_type=d['metric_type'], params=d['params']),
                          lambda: self._create(d)))
        needs_wait = build or (current is not None and not _is_built(current.get('build')))
        if wait > 0 and needs_wait:
            steps.append((_call('wait_for_index', collection=self.collection, index_name=d['index_name'],
                                timeout=self.p.get('wait_timeout')), lambda: self._wait(d['index_name'], wait)))
        final_loaded = loaded
        if (want_load and not loaded) or (recreate and loaded):
            steps.append((_call('load_collection', collection=self.collection), self._load))
            final_loaded = True
        changed = build or (want_load and not loaded)
        before = _public(current, loaded, self.collection) if current else {}
        self._execute(steps, rollback=(current, loaded) if recreate else None)
        after_def = dict(d)
        if not build:
            after_def['index_name'] = current['index_name']
        result = dict(changed=changed, actions=self.actions)
        build_info = None
        if not self.check_mode and (build or needs_wait):
            build_info = self._describe_build(after_def['index_name'])
        elif current is not None and not build:
            build_info = current.get('build')
        after_def['build'] = build_info
        result['index'] = _public(after_def, final_loaded, self.collection)
        result['diff'] = dict(before=before, after=result['index'])
        return result

    def _absent(self, current, loaded):
        steps = []
        target = current
        if current is not None and self.name_explicit and current['index_name'] != self.index_name:
            target = None
        if target is not None:
            if loaded:
                steps.append((_call('release_collection', collection=self.collection), self._release))
            steps.append((_call('drop_index', collection=self.collection, index_name=target['index_name']),
                          lambda: self._drop(target['index_name'])))
        before = _public(current, loaded, self.collection) if target else {}
        self._execute(steps)
        after = {} if target else (_public(current, loaded, self.collection) if current else {})
        return dict(changed=bool(steps), actions=self.actions, index=after, diff=dict(before=before, after=after))

    def _execute(self, steps, rollback=None):
        for words, func in steps:
            if self.check_mode:
                self.actions.append(words)
                continue
            try:
                func()
            except MilvusIndexError as exc:
                if rollback is not None and any(a.startswith('drop_index(') for a in self.actions):
                    exc = self._rollback(exc, *rollback)
                exc.details.setdefault('actions', list(self.actions))
                raise exc
            self.actions.append(words)

    def _rollback(self, exc, current, loaded):
        """The old index was dropped and the new one failed: put the old definition back."""
        notes = []
        try:
            if not self._client.list_indexes(self.collection, field_name=self.field):
                self._create(current)
                notes.append('the previous index %r was recreated' % current['index_name'])
            if loaded and not self._loaded():
                self._load()
                notes.append('the collection was loaded again')
        except Exception as again:  # report both problems; the first one is the cause
            notes.append('restoring the previous index failed too: %s' % _reason(again))
        return MilvusIndexError('%s (%s)' % (exc.msg, '; '.join(notes) or 'nothing to restore'), **exc.details)

    # ---- the API calls
    def _release(self):
        self._api('release_collection', self.client.release_collection, self.collection, timeout=self.timeout)

    def _drop(self, name):
        self._api('drop_index', self.client.drop_index, self.collection, name, timeout=self.timeout)

    def _create(self, definition):
        c = self.client
        index_params = c.prepare_index_params()
        index_params.add_index(field_name=self.field, index_type=definition['index_type'],
                               index_name=definition['index_name'], metric_type=definition['metric_type'],
                               params=dict(definition['params']))
        self._api('create_index', c.create_index, self.collection, index_params, timeout=self.timeout, sync=False)

    def _load(self):
        wait = float(self.p.get('wait_timeout') or 0)
        self._api('load_collection', self.client.load_collection, self.collection,
                  timeout=max(self.timeout, wait))

    def _describe_build(self, name):
        info = self._api('describe_index', self.client.describe_index, self.collection, name, timeout=self.timeout)
        return _build_state(info or {})

    def _wait(self, name, timeout):
        deadline = self._clock() + timeout
        delay = 0.05
        while True:
            build = self._describe_build(name)
            if build['state'] == 'Failed':
                raise MilvusIndexError("building index %r on %s.%s failed: %s"
                                       % (name, self.collection, self.field, build.get('fail_reason') or 'no reason given'))
            if _is_built(build):
                return build
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise MilvusIndexError(
                    "index %r on %s.%s was not built within wait_timeout=%gs: %s of %s rows indexed (state %s). "
                    "The server keeps building it; run again later or raise wait_timeout"
                    % (name, self.collection, self.field, timeout, build['indexed_rows'], build['total_rows'],
                       build['state']))
            self._sleep(min(delay, remaining))
            delay = min(delay * 1.5, 0.5)


def _build_state(info):
    return dict(state=str(info.get('state') or ''), indexed_rows=int(info.get('indexed_rows') or 0),
                total_rows=int(info.get('total_rows') or 0), pending_index_rows=int(info.get('pending_index_rows') or 0),
                fail_reason=info.get('index_state_fail_reason') or '')


def _is_built(build):
    if not build:
        return True
    return (build.get('state') == 'Finished' and build.get('indexed_rows', 0) >= build.get('total_rows', 0)
            and not build.get('pending_index_rows'))


def _public(definition, loaded, collection):
    if not definition:
        return {}
    out = dict(collection=collection, field=definition.get('field'), index_name=definition.get('index_name'),
               index_type=definition.get('index_type'), metric_type=definition.get('metric_type'),
               params=dict(definition.get('params') or {}), loaded=bool(loaded))
    build = definition.get('build')
    if build:
        for key in ('state', 'indexed_rows', 'total_rows', 'pending_index_rows'):
            out[key] = build.get(key)
    return out


def _reason(exc):
    message = getattr(exc, 'message', None)
    code = getattr(exc, 'code', None)
    text = message if message else str(exc)
    return '%s (code %s)' % (text, code) if code not in (None, 0, -1) and message else text


def run_manager_module(argument_spec, manager_class, required_if=None):
    """main() of the Milvus modules: validate the arguments, run one manager, report.

    On a MilvusIndexError the result names the API calls already made (``actions``) and says
    changed when there were any (outside check mode); the manager's connections are closed either
    way; warnings the manager returns become module warnings; ``diff`` is returned only in diff mode.
    """
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=MILVUS_MUTUALLY_EXCLUSIVE,
        required_together=MILVUS_REQUIRED_TOGETHER,
        required_if=required_if or [],
        supports_check_mode=True,
    )
    if not HAS_PYMILVUS:
        module.fail_json(msg=missing_required_lib('pymilvus'), exception=PYMILVUS_IMPORT_ERROR)

    manager = manager_class(module.params, check_mode=module.check_mode)
    close = getattr(manager, 'close', lambda: None)
    try:
        result = manager.run()
    except MilvusIndexError as exc:
        details = dict(exc.details)
        details.setdefault('actions', list(manager.actions))
        close()
        module.fail_json(msg=exc.msg, changed=bool(details['actions']) and not module.check_mode, **details)
    close()
    for warning in result.pop('warnings', []):
        module.warn(warning)
    if not module._diff:
        result.pop('diff', None)
    module.exit_json(**result)

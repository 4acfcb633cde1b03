# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Milvus collection management for aistack.infra (private: not a public API).

``MilvusCollectionManager`` does the work of ``milvus_collection``: it validates the whole
request offline (field types, dimensions, lengths, the primary key...), then reads the server
(database, collection schema, partitions), compares the whole definition, plans the API calls
and runs them unless in check mode. Milvus cannot alter a schema: a difference fails, showing
it, unless the user asked for the collection to be recreated.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.aistack.infra.plugins.module_utils._milvus import (
    MilvusIndexError,
    _call,
    _reason,
    connect,
    parse_version,
)

try:
    from pymilvus import DataType, MilvusClient
except ImportError:  # the module reports missing_required_lib('pymilvus') before using these
    DataType = MilvusClient = None


# Field types, with the first server version that has them (None: every 2.3 server).
SCALAR_TYPES = ('BOOL', 'INT8', 'INT16', 'INT32', 'INT64', 'FLOAT', 'DOUBLE', 'VARCHAR', 'JSON', 'ARRAY')
DIM_VECTOR_TYPES = ('FLOAT_VECTOR', 'BINARY_VECTOR', 'FLOAT16_VECTOR', 'BFLOAT16_VECTOR')
VECTOR_TYPES = DIM_VECTOR_TYPES + ('SPARSE_FLOAT_VECTOR',)
FIELD_TYPES = SCALAR_TYPES + VECTOR_TYPES
TYPE_SINCE = {'FLOAT16_VECTOR': (2, 4), 'BFLOAT16_VECTOR': (2, 4), 'SPARSE_FLOAT_VECTOR': (2, 4)}
ELEMENT_TYPES = ('BOOL', 'INT8', 'INT16', 'INT32', 'INT64', 'FLOAT', 'DOUBLE', 'VARCHAR')
PRIMARY_TYPES = ('INT64', 'VARCHAR')
CONSISTENCY_LEVELS = ('Strong', 'Session', 'Bounded', 'Eventually')
# What Milvus uses when a collection is created without them.
DEFAULT_SHARDS = 1
DEFAULT_CONSISTENCY = 'Bounded'
MAX_VARCHAR_LENGTH = 65535
MAX_ARRAY_CAPACITY = 4096
NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]{0,254}$')
NAME_RULE = 'letters, digits and _, not starting with a digit, at most 255 characters'
DEFAULT_PARTITION = '_default'


class MilvusCollectionError(MilvusIndexError):
    """A problem the user can act on; main() turns it into fail_json(msg=..., **details)."""


# --------------------------------------------------------------------------- the request

def _int(where, key, value, low, high=None):
    if isinstance(value, bool):
        value = None
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        number = None
    if number is None or number < low or (high is not None and number > high):
        allowed = 'an integer from %d to %d' % (low, high) if high is not None else 'an integer of %d or more' % low
        raise MilvusCollectionError('%s: %s must be %s, got %r' % (where, key, allowed, value))
    return number


def _type_name(value):
    """A DataType (or its name) from describe_collection() as the upper-case name."""
    return getattr(value, 'name', None) or str(value).rsplit('.', maxsplit=1)[-1].upper()


def normalize_field(index, spec):
    """The comparable definition of one field of the request; raises on anything Milvus would refuse."""
    if not isinstance(spec, dict):
        raise MilvusCollectionError('fields[%d] must be a dictionary, got %r' % (index, spec))
    name = spec.get('name')
    where = 'fields[%d] (%s)' % (index, name)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise MilvusCollectionError('%s: name must be %s' % (where, NAME_RULE))
    ftype = str(spec.get('type') or '').strip().upper()
    if ftype not in FIELD_TYPES:
        raise MilvusCollectionError('%s: type %r is not supported; allowed: %s'
                                    % (where, spec.get('type'), ', '.join(FIELD_TYPES)))
    field = dict(name=name, type=ftype, is_primary=bool(spec.get('is_primary')))
    if field['is_primary']:
        if ftype not in PRIMARY_TYPES:
            raise MilvusCollectionError('%s: a primary key must be INT64 or VARCHAR, not %s' % (where, ftype))
        field['auto_id'] = bool(spec.get('auto_id'))
    elif spec.get('auto_id'):
        raise MilvusCollectionError('%s: auto_id is only for the primary key field' % where)

    dim, max_length = spec.get('dim'), spec.get('max_length')
    element_type, max_capacity = spec.get('element_type'), spec.get('max_capacity')
    if ftype in DIM_VECTOR_TYPES:
        if dim is None:
            raise MilvusCollectionError('%s: a %s field needs dim (its number of dimensions)' % (where, ftype))
        field['dim'] = _int(where, 'dim', dim, 1, 32768 * (8 if ftype == 'BINARY_VECTOR' else 1))
        if ftype == 'BINARY_VECTOR' and field['dim'] % 8:
            raise MilvusCollectionError('%s: dim of a BINARY_VECTOR field must be a multiple of 8, got %d'
                                        % (where, field['dim']))
    elif dim is not None:
        raise MilvusCollectionError('%s: dim is only for the vector types %s, not %s'
                                    % (where, ', '.join(DIM_VECTOR_TYPES), ftype))

    if ftype == 'ARRAY':
        etype = str(element_type or '').strip().upper()
        if etype not in ELEMENT_TYPES:
            raise MilvusCollectionError('%s: an ARRAY field needs element_type, one of %s (got %r)'
                                        % (where, ', '.join(ELEMENT_TYPES), element_type))
        if max_capacity is None:
            raise MilvusCollectionError('%s: an ARRAY field needs max_capacity (1 to %d)' % (where, MAX_ARRAY_CAPACITY))
        field['element_type'] = etype
        field['max_capacity'] = _int(where, 'max_capacity', max_capacity, 1, MAX_ARRAY_CAPACITY)
    else:
        for key, value in (('element_type', element_type), ('max_capacity', max_capacity)):
            if value is not None:
                raise MilvusCollectionError('%s: %s is only for ARRAY fields, not %s' % (where, key, ftype))

    wants_length = ftype == 'VARCHAR' or field.get('element_type') == 'VARCHAR'
    if wants_length:
        if max_length is None:
            raise MilvusCollectionError('%s: a %s field needs max_length (1 to %d)'
                                        % (where, 'VARCHAR' if ftype == 'VARCHAR' else 'ARRAY of VARCHAR',
                                           MAX_VARCHAR_LENGTH))
        field['max_length'] = _int(where, 'max_length', max_length, 1, MAX_VARCHAR_LENGTH)
    elif max_length is not None:
        raise MilvusCollectionError('%s: max_length is only for VARCHAR fields (and ARRAY of VARCHAR), not %s'
                                    % (where, ftype))
    if spec.get('description') is not None:
        field['description'] = str(spec['description'])
    return field


def normalize_request(params):
    """The whole desired definition from the module's parameters (validated, nothing contacted)."""
    name = params.get('collection')
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise MilvusCollectionError('collection %r: the name must be %s' % (name, NAME_RULE))
    db_name = params.get('db_name') or 'default'
    if not NAME_RE.match(db_name):
        raise MilvusCollectionError('db_name %r: the name must be %s' % (db_name, NAME_RULE))
    if params.get('state', 'present') == 'absent':
        return dict(name=name, db_name=db_name)
    fields = params.get('fields') or []
    if not fields:
        raise MilvusCollectionError('fields: a collection needs at least a primary key field and a vector field')
    norm = [normalize_field(i, f) for i, f in enumerate(fields)]
    names = [f['name'] for f in norm]
    repeated = sorted(set(n for n in names if names.count(n) > 1))
    if repeated:
        raise MilvusCollectionError('fields: field names must be unique; repeated: %s' % ', '.join(repeated))
    primaries = [f['name'] for f in norm if f['is_primary']]
    if len(primaries) != 1:
        raise MilvusCollectionError('fields: exactly one field needs is_primary: true (found %d%s)'
                                    % (len(primaries), ': ' + ', '.join(primaries) if primaries else ''))
    if not [f for f in norm if f['type'] in VECTOR_TYPES]:
        raise MilvusCollectionError('fields: a collection needs a vector field (one of %s)' % ', '.join(VECTOR_TYPES))
    if params.get('enable_dynamic_field') and '$meta' in names:
        raise MilvusCollectionError('fields: $meta is reserved for the dynamic field')
    desired = dict(name=name, db_name=db_name, fields=norm,
                   enable_dynamic_field=bool(params.get('enable_dynamic_field')))
    for key in ('description',):
        if params.get(key) is not None:
            desired[key] = str(params[key])
    if params.get('shards_num') is not None:
        desired['shards_num'] = _int('collection %s' % name, 'shards_num', params['shards_num'], 1, 64)
    if params.get('consistency_level') is not None:
        level = str(params['consistency_level'])
        match = [c for c in CONSISTENCY_LEVELS if c.lower() == level.lower()]
        if not match:
            raise MilvusCollectionError('consistency_level %r is not supported; allowed: %s'
                                        % (level, ', '.join(CONSISTENCY_LEVELS)))
        desired['consistency_level'] = match[0]
    partitions = list(params.get('partitions') or [])
    for part in partitions:
        if not isinstance(part, str) or not NAME_RE.match(part) or part == DEFAULT_PARTITION:
            raise MilvusCollectionError('partitions: %r is not a valid partition name (%s; not %s)'
                                        % (part, NAME_RULE, DEFAULT_PARTITION))
    repeated = sorted(set(p for p in partitions if partitions.count(p) > 1))
    if repeated:
        raise MilvusCollectionError('partitions: partition names must be unique; repeated: %s' % ', '.join(repeated))
    desired['partitions'] = partitions
    return desired


def check_server_support(desired, version):
    """Refuse what the server's version cannot hold (before anything is changed)."""
    number, _flavour = parse_version(version)
    if number is None:
        return
    for field in desired['fields']:
        since = TYPE_SINCE.get(field['type'])
        if since and number[:2] < since:
            raise MilvusCollectionError('field %s: type %s needs Milvus %s or later; the server is %s'
                                        % (field['name'], field['type'], '.'.join(str(x) for x in since), version))
    vectors = [f['name'] for f in desired['fields'] if f['type'] in VECTOR_TYPES]
    if len(vectors) > 1 and number[:2] < (2, 4):
        raise MilvusCollectionError('fields: Milvus %s allows one vector field per collection (2.4 or later for '
                                    'more); requested: %s' % (version, ', '.join(vectors)))


# --------------------------------------------------------------------------- the server's side

def current_definition(info, partitions, db_name):
    """describe_collection() + list_partitions() as the same shape as the request (every key filled)."""
    fields = []
    for raw in info.get('fields', []):
        ftype = _type_name(raw.get('type'))
        params = raw.get('params') or {}
        field = dict(name=raw.get('name'), type=ftype, is_primary=bool(raw.get('is_primary')))
        if field['is_primary']:
            field['auto_id'] = bool(raw.get('auto_id', info.get('auto_id', False)))
        if 'dim' in params:
            field['dim'] = int(params['dim'])
        if ftype == 'ARRAY':
            field['element_type'] = _type_name(raw.get('element_type'))
            field['max_capacity'] = int(params.get('max_capacity', 0))
        if 'max_length' in params:
            field['max_length'] = int(params['max_length'])
        field['description'] = raw.get('description') or ''
        fields.append(field)
    level = info.get('consistency_level_name') or info.get('consistency_level')
    return dict(name=info.get('collection_name'), db_name=db_name, description=info.get('description') or '',
                fields=fields, enable_dynamic_field=bool(info.get('enable_dynamic_field')),
                shards_num=int(info.get('num_shards') or 0), consistency_level=level,
                partitions=list(partitions))


def _show(value):
    return 'unset' if value is None else repr(value)


def differences(desired, current):
    """Every schema difference as (key, current, requested); partitions are not part of the schema."""
    diffs = []
    want = dict((f['name'], f) for f in desired['fields'])
    have = dict((f['name'], f) for f in current['fields'])
    for field in desired['fields']:
        name = field['name']
        if name not in have:
            diffs.append(('field %s' % name, 'missing', 'requested'))
            continue
        server = have[name]
        for key in ('type', 'is_primary', 'auto_id', 'dim', 'element_type', 'max_capacity', 'max_length',
                    'description'):
            if key == 'description' and key not in field:
                continue  # compared only when given
            if field.get(key) != server.get(key):
                diffs.append(('field %s: %s' % (name, key), server.get(key), field.get(key)))
    for field in current['fields']:
        if field['name'] not in want:
            diffs.append(('field %s' % field['name'], 'on the server', 'not requested'))
    order_want = [f['name'] for f in desired['fields']]
    order_have = [f['name'] for f in current['fields']]
    if not diffs and order_want != order_have:
        diffs.append(('field order', order_have, order_want))
    if desired['enable_dynamic_field'] != current['enable_dynamic_field']:
        diffs.append(('enable_dynamic_field', current['enable_dynamic_field'], desired['enable_dynamic_field']))
    for key in ('shards_num', 'consistency_level', 'description'):
        if key in desired and desired[key] != current.get(key):
            diffs.append((key, current.get(key), desired[key]))
    return diffs


def format_differences(diffs):
    out = []
    for key, cur, want in diffs:
        if key.startswith('field ') and cur in ('missing', 'on the server'):
            out.append('%s: %s, %s' % (key, cur, want))
        else:
            out.append('%s is %s on the server, %s requested' % (key, _show(cur), _show(want)))
    return '; '.join(out)


def _predicted(desired, current, partitions):
    """The definition the collection will have after the run (what the server describes back)."""
    if current is not None:  # kept: its schema equals the request in every compared key
        return dict(current, partitions=list(partitions))
    after = dict(desired)
    after['fields'] = [dict(f, description=f.get('description', '')) for f in desired['fields']]
    after.setdefault('description', '')
    after.setdefault('shards_num', DEFAULT_SHARDS)
    after.setdefault('consistency_level', DEFAULT_CONSISTENCY)
    after['partitions'] = list(partitions)
    return after


# --------------------------------------------------------------------------- manager

class MilvusCollectionManager(object):
    """Ensure (or remove) one collection with its partitions, the way ``milvus_collection`` documents it."""

    def __init__(self, params, check_mode=False, connect_fn=None):
        self.p = params
        self.check_mode = check_mode
        self._connect_fn = connect_fn or (lambda **overrides: connect(self.p, MilvusCollectionError, **overrides))
        self.state = params.get('state') or 'present'
        self.actions = []
        self.desired = None
        self._clients = {}

    # ---- connection
    def client(self, db_name='default'):
        if db_name not in self._clients:
            self._clients[db_name] = self._connect_fn(db_name=db_name)
        return self._clients[db_name]

    def close(self):
        for client in self._clients.values():
            if hasattr(client, 'close'):
                try:
                    client.close()
                except Exception:  # closing is best effort: the work is done or has failed already
                    pass
        self._clients = {}

    @staticmethod
    def _api(what, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MilvusIndexError:
            raise
        except Exception as exc:
            raise MilvusCollectionError('%s failed: %s' % (what, _reason(exc)))

    # ---- reading the server
    def inspect(self, db_name, name):
        """(database exists, current definition or None)."""
        root = self.client('default')
        timeout = float(self.p.get('timeout') or 30.0)
        if db_name != 'default':
            databases = self._api('list_databases', root.list_databases, timeout=timeout)
            if db_name not in databases:
                return False, None
        c = self.client(db_name)
        if not self._api('has_collection', c.has_collection, name, timeout=timeout):
            return True, None
        info = self._api('describe_collection', c.describe_collection, name, timeout=timeout)
        partitions = self._api('list_partitions', c.list_partitions, name, timeout=timeout)
        return True, current_definition(info, partitions, db_name)

    # ---- planning and running
    def run(self):
        self.desired = normalize_request(self.p)
        name, db_name = self.desired['name'], self.desired['db_name']
        if self.state == 'absent':
            return self._absent(name, db_name)
        version = self._api('get_server_version', self.client('default').get_server_version)
        check_server_support(self.desired, version)
        db_exists, current = self.inspect(db_name, name)
        return self._present(db_exists, current, version)

    def _present(self, db_exists, current, version):
        d = self.desired
        name, db_name = d['name'], d['db_name']
        steps = []
        if not db_exists:
            steps.append((_call('create_database', db_name=db_name), lambda: self._create_database(db_name)))
        recreate = False
        if current is not None:
            diffs = differences(d, current)
            if diffs and self.p.get('recreate', 'never') != 'on_change':
                raise MilvusCollectionError(
                    'collection %s (database %s) differs from the requested definition: %s. Milvus cannot alter a '
                    'collection schema, so nothing was changed: change the request back, or set recreate=on_change '
                    'to drop the collection and create it again (its data and index are lost)'
                    % (name, db_name, format_differences(diffs)),
                    differences=[dict(key=k, current=c, requested=w) for k, c, w in diffs], collection=current)
            recreate = bool(diffs)
        if recreate:
            steps.append((_call('drop_collection', collection=name), lambda: self._drop_collection(db_name, name)))
        if current is None or recreate:
            steps.append((self._create_words(), self._create_collection))
            have = [DEFAULT_PARTITION]
        else:
            have = list(current['partitions'])
        after = list(have)
        for part in d['partitions']:
            if part not in have:
                steps.append((_call('create_partition', collection=name, partition=part),
                              lambda part=part: self._api('create_partition', self.client(db_name).create_partition,
                                                          name, part, timeout=self._timeout)))
                after.append(part)
        if self.p.get('partitions_exclusive'):
            for part in have:
                if part != DEFAULT_PARTITION and part not in d['partitions']:
                    steps.append((_call('release_partitions', collection=name, partitions=[part]),
                                  lambda part=part: self._api('release_partitions',
                                                              self.client(db_name).release_partitions,
                                                              name, [part], timeout=self._timeout)))
                    steps.append((_call('drop_partition', collection=name, partition=part),
                                  lambda part=part: self._api('drop_partition', self.client(db_name).drop_partition,
                                                              name, part, timeout=self._timeout)))
                    after.remove(part)
        self._execute(steps)
        predicted = _predicted(d, None if recreate else current, after)
        result = dict(changed=bool(steps), actions=self.actions)
        if steps and not self.check_mode:
            _db, described = self.inspect(db_name, name)
            result['collection'] = described
        else:
            result['collection'] = predicted
        result['diff'] = dict(before=current or {}, after=result['collection'])
        return result

    def _absent(self, name, db_name):
        db_exists, current = self.inspect(db_name, name)
        steps = []
        if current is not None:
            steps.append((_call('drop_collection', collection=name), lambda: self._drop_collection(db_name, name)))
        self._execute(steps)
        return dict(changed=bool(steps), actions=self.actions, collection={},
                    diff=dict(before=current or {}, after={}))

    def _execute(self, steps):
        for words, func in steps:
            if not self.check_mode:
                try:
                    func()
                except MilvusIndexError as exc:
                    exc.details.setdefault('actions', list(self.actions))
                    raise
            self.actions.append(words)

    # ---- the API calls
    @property
    def _timeout(self):
        return float(self.p.get('timeout') or 30.0)

    def _create_words(self):
        d = self.desired
        return _call('create_collection', collection=d['name'], fields=[_field_words(f) for f in d['fields']],
                     enable_dynamic_field=d['enable_dynamic_field'],
                     shards_num=d.get('shards_num', DEFAULT_SHARDS),
                     consistency_level=d.get('consistency_level', DEFAULT_CONSISTENCY))

    def _create_database(self, db_name):
        self._api('create_database', self.client('default').create_database, db_name, timeout=self._timeout)

    def _drop_collection(self, db_name, name):
        self._api('drop_collection', self.client(db_name).drop_collection, name, timeout=self._timeout)

    def _create_collection(self):
        d = self.desired
        schema = build_schema(d)
        self._api('create_collection', self.client(d['db_name']).create_collection, d['name'], schema=schema,
                  shards_num=d.get('shards_num', DEFAULT_SHARDS),
                  consistency_level=d.get('consistency_level', DEFAULT_CONSISTENCY), timeout=self._timeout)


def _field_words(field):
    """``id INT64 primary auto_id``, ``embedding FLOAT_VECTOR(16)``, ``tags ARRAY<VARCHAR(32)>[8]``."""
    ftype = field['type']
    if 'dim' in field:
        ftype += '(%d)' % field['dim']
    elif field['type'] == 'ARRAY':
        element = field['element_type'] + ('(%d)' % field['max_length'] if 'max_length' in field else '')
        ftype = 'ARRAY<%s>[%d]' % (element, field['max_capacity'])
    elif 'max_length' in field:
        ftype += '(%d)' % field['max_length']
    words = '%s %s' % (field['name'], ftype)
    if field['is_primary']:
        words += ' primary' + (' auto_id' if field.get('auto_id') else '')
    return words


def build_schema(desired):
    """The pymilvus CollectionSchema of a normalized request."""
    auto_id = any(f.get('auto_id') for f in desired['fields'])
    schema = MilvusClient.create_schema(auto_id=auto_id, enable_dynamic_field=desired['enable_dynamic_field'],
                                        description=desired.get('description', ''))
    for f in desired['fields']:
        kwargs = dict(description=f.get('description', ''))
        if f['is_primary']:
            kwargs.update(is_primary=True, auto_id=f.get('auto_id', False))
        for key in ('dim', 'max_length', 'max_capacity'):
            if key in f:
                kwargs[key] = f[key]
        if 'element_type' in f:
            kwargs['element_type'] = getattr(DataType, f['element_type'])
        schema.add_field(f['name'], getattr(DataType, f['type']), **kwargs)
    return schema

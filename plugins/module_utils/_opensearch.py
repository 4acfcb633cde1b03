# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpenSearch access through opensearch-py and the k-NN index manager behind ``aistack.infra.opensearch_knn_index``.

Private to aistack.infra: no stability promise for other collections.

``OpenSearchClient`` turns the collection's connection options into an ``opensearchpy.OpenSearch``
client (one per module run or probe, so threads never share TLS settings) and every client error
into ``OpenSearchError`` with a message a user can act on. opensearch-py is imported behind a guard:
callers check ``HAS_OPENSEARCHPY`` and fail with ``missing_required_lib('opensearch-py')``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import re
import ssl
import traceback

from urllib.parse import urlsplit

from ansible.module_utils.basic import env_fallback

from ansible_collections.aistack.infra.plugins.module_utils._http import build_ssl_context, mask_url

try:
    import opensearchpy
    from opensearchpy import exceptions as opensearch_exceptions
except ImportError:
    opensearchpy = None
    opensearch_exceptions = None
    HAS_OPENSEARCHPY = False
    OPENSEARCHPY_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_OPENSEARCHPY = True
    OPENSEARCHPY_IMPORT_ERROR = None

OPENSEARCHPY_LIBRARY = 'opensearch-py'


class OpenSearchError(Exception):
    """The one domain error of this module_utils: its message is shown to the user as is."""


# --------------------------------------------------------------------------------------------------
# Connection options (documented in plugins/doc_fragments/opensearch.py)
# --------------------------------------------------------------------------------------------------

def opensearch_argument_spec():
    """Connection options, named as opensearch-py names them; merged into each OpenSearch module's spec."""
    return dict(
        hosts=dict(type='list', elements='str', default=['http://localhost:9200'],
                   fallback=(env_fallback, ['OPENSEARCH_HOSTS'])),
        user=dict(type='str', aliases=['http_auth_user'], fallback=(env_fallback, ['OPENSEARCH_USER'])),
        password=dict(type='str', no_log=True, aliases=['http_auth_password'],
                      fallback=(env_fallback, ['OPENSEARCH_PASSWORD'])),
        use_ssl=dict(type='bool', default=False),
        verify_certs=dict(type='bool', default=True),
        ca_certs=dict(type='path'),
        client_cert=dict(type='path'),
        client_key=dict(type='path', no_log=False),
        ssl_assert_hostname=dict(type='str'),
        timeout=dict(type='int', default=30),
    )


OPENSEARCH_REQUIRED_TOGETHER = [['user', 'password']]
OPENSEARCH_REQUIRED_BY = {'client_key': 'client_cert'}


# --------------------------------------------------------------------------------------------------
# OpenSearch client
# --------------------------------------------------------------------------------------------------

def parse_host(host, use_ssl=False):
    """'https://h:9200/prefix', 'h:9200' or 'h' -> base URL without trailing slash."""
    host = (host or '').strip()
    if not host:
        raise OpenSearchError("hosts: an empty host was given; use URLs like https://search1:9200 or host:port")
    if '://' not in host:
        host = '%s://%s' % ('https' if use_ssl else 'http', host)
    parts = urlsplit(host)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise OpenSearchError("hosts: %r is not a valid OpenSearch URL; use http(s)://host:port" % mask_url(host))
    if parts.username is not None:
        raise OpenSearchError("hosts: put credentials in user/password, not in the URL (%s)" % mask_url(host))
    try:
        port = parts.port or 9200
    except ValueError:
        raise OpenSearchError("hosts: %r has an invalid port" % host)
    hostname = parts.hostname
    if ':' in hostname:
        hostname = '[%s]' % hostname
    return '%s://%s:%d%s' % (parts.scheme, hostname, port, parts.path.rstrip('/'))


def error_reason(data):
    """'type: reason' from an OpenSearch error body (or the raw text)."""
    if isinstance(data, dict):
        err = data.get('error')
        if isinstance(err, dict):
            reason = '%s: %s' % (err.get('type', 'error'), err.get('reason', ''))
            caused = err.get('caused_by')
            if isinstance(caused, dict) and caused.get('reason'):
                reason += ' (caused by %s: %s)' % (caused.get('type'), caused.get('reason'))
            return reason
        if err:
            return str(err)
        return json.dumps(data, sort_keys=True)[:500]
    if data is None:
        return 'empty response'
    return str(data)[:500]


class OpenSearchClient:
    """The calls the collection makes, over ``opensearchpy.OpenSearch``, with errors as ``OpenSearchError``.

    ``hosts`` are tried in turn when one cannot be reached (opensearch-py marks it dead and retries on
    the next). TLS: ``verify_certs``, ``ca_certs``, ``client_cert``/``client_key`` and
    ``ssl_assert_hostname`` are opensearch-py's own options; basic authentication is ``http_auth``.
    """

    def __init__(self, hosts, user=None, password=None, use_ssl=False, verify_certs=True, ca_certs=None,
                 client_cert=None, client_key=None, ssl_assert_hostname=None, timeout=30):
        if not HAS_OPENSEARCHPY:
            raise OpenSearchError("the %s Python library is not installed on the host that runs this (pip install %s)"
                                  % (OPENSEARCHPY_LIBRARY, OPENSEARCHPY_LIBRARY))
        if isinstance(hosts, str):
            hosts = [hosts]
        if not hosts:
            raise OpenSearchError("hosts: give at least one OpenSearch URL")
        self.hosts = [parse_host(h, use_ssl) for h in hosts]
        kwargs = dict(
            hosts=self.hosts,
            timeout=timeout,
            # One try per host: a dead node is skipped, a live one that answers an error is not retried.
            max_retries=len(self.hosts) - 1,
            retry_on_status=(502, 503, 504),
            retry_on_timeout=False,
        )
        if user is not None:
            kwargs['http_auth'] = (user, password or '')
        if any(h.startswith('https:') for h in self.hosts):
            kwargs.update(tls_options(verify_certs, ca_certs, client_cert, client_key, ssl_assert_hostname))
        try:
            self.client = opensearchpy.OpenSearch(**kwargs)
        except (opensearch_exceptions.ImproperlyConfigured, ValueError, OSError) as exc:
            raise OpenSearchError("cannot set up the OpenSearch client (hosts, ca_certs, client_cert, client_key): %s"
                                  % exc)

    @classmethod
    def from_params(cls, params):
        return cls(params['hosts'], user=params.get('user'), password=params.get('password'),
                   use_ssl=params.get('use_ssl', False), verify_certs=params.get('verify_certs', True),
                   ca_certs=params.get('ca_certs'), client_cert=params.get('client_cert'),
                   client_key=params.get('client_key'), ssl_assert_hostname=params.get('ssl_assert_hostname'),
                   timeout=params.get('timeout') or 30)

    def call(self, what, function, *args, **kwargs):
        """Run one opensearch-py call; ``what`` names it in errors ('GET /docs'). 404 raises NotFound."""
        try:
            return function(*args, **kwargs)
        except opensearch_exceptions.NotFoundError as exc:
            raise NotFound("%s: HTTP 404 %s" % (what, error_reason(exc.info)))
        except opensearch_exceptions.AuthenticationException:
            raise OpenSearchError("%s: authentication failed (HTTP 401) at %s: check user/password"
                                  % (what, ', '.join(self.hosts)))
        except opensearch_exceptions.ConnectionError as exc:
            raise OpenSearchError("cannot reach OpenSearch (%s) at %s: %s"
                                  % (what, ', '.join(self.hosts), _connection_reason(exc)))
        except opensearch_exceptions.TransportError as exc:
            raise OpenSearchError("%s failed: HTTP %s %s" % (what, exc.status_code, error_reason(exc.info)))
        except opensearch_exceptions.ImproperlyConfigured as exc:
            raise OpenSearchError("%s: %s" % (what, exc))

    def info(self):
        data = self.call('GET /', self.client.info)
        version = (data or {}).get('version') or {}
        if not isinstance(version, dict) or not version.get('number'):
            raise OpenSearchError("GET / did not return an OpenSearch version: %s" % error_reason(data))
        if version.get('distribution') != 'opensearch':
            raise OpenSearchError("the server at %s is not OpenSearch (distribution %r, version %s)"
                                  % (self.hosts[0], version.get('distribution'), version.get('number')))
        return data

    def cluster_health(self):
        return self.call('GET /_cluster/health', self.client.cluster.health)

    def get_index(self, index):
        """GET /<index>?flat_settings=true as a dict, or None when there is no such index."""
        try:
            return self.call('GET /%s' % index, self.client.indices.get, index=index, flat_settings=True)
        except NotFound:
            return None

    def create_index(self, index, body):
        return self.call('PUT /%s' % index, self.client.indices.create, index=index, body=body)

    def delete_index(self, index):
        return self.call('DELETE /%s' % index, self.client.indices.delete, index=index)

    def put_settings(self, index, body):
        return self.call('PUT /%s/_settings' % index, self.client.indices.put_settings, index=index, body=body)

    def put_mapping(self, index, body):
        return self.call('PUT /%s/_mapping' % index, self.client.indices.put_mapping, index=index, body=body)


def tls_options(verify_certs=True, ca_certs=None, client_cert=None, client_key=None, ssl_assert_hostname=None):
    """opensearch-py TLS arguments for the connection options; the PEM files are checked here, before any request.

    Verifying: opensearch-py's own options, with the system's CA bundle when ``ca_certs`` is not given
    (opensearch-py would otherwise use certifi's). Not verifying: an ``ssl_context`` of ours, because
    opensearch-py drops the client certificate when ``verify_certs`` is false.
    """
    try:
        context = build_ssl_context(verify_certs, ca_certs, client_cert, client_key)
    except (OSError, ssl.SSLError) as exc:
        raise OpenSearchError("TLS setup failed (ca_certs/client_cert/client_key): %s" % exc)
    if not verify_certs:
        return {'ssl_context': context}
    options = {'verify_certs': True, 'ssl_show_warn': False}
    if ca_certs:
        options['ca_certs'] = ca_certs
    else:
        paths = ssl.get_default_verify_paths()
        for candidate in (paths.cafile, paths.openssl_cafile):
            if candidate and os.path.isfile(candidate):
                options['ca_certs'] = candidate
                break
    if client_cert:
        options['client_cert'] = client_cert
    if client_key:
        options['client_key'] = client_key
    if ssl_assert_hostname:
        options['ssl_assert_hostname'] = ssl_assert_hostname
    return options


class NotFound(OpenSearchError):
    """HTTP 404 from a call (an absent index)."""


def _connection_reason(exc):
    """The underlying error of an opensearch-py ConnectionError, on one line."""
    cause = exc.info if isinstance(getattr(exc, 'info', None), BaseException) else None
    text = str(cause or exc.error or exc)
    if isinstance(exc, opensearch_exceptions.SSLError):
        text = 'TLS error: ' + text
    elif isinstance(exc, opensearch_exceptions.ConnectionTimeout):
        text = 'no answer in time: ' + text
    return ' '.join(text.split())[:500]


def parse_version(number):
    """'2.19.1' / '3.0.0-SNAPSHOT' -> (2, 19, 1)."""
    nums = []
    for part in str(number).split('-', 1)[0].split('.')[:3]:
        try:
            nums.append(int(part))
        except ValueError:
            nums.append(0)
    while len(nums) < 3:
        nums.append(0)
    return tuple(nums)


# --------------------------------------------------------------------------------------------------
# k-NN index definition: validation, rendering and comparison
# --------------------------------------------------------------------------------------------------

MAX_DIMENSION = 16000

# engine -> method -> supported spaces (OpenSearch "Methods and engines" documentation, 2.x/3.x).
ENGINE_METHODS = {
    'faiss': {'hnsw': ('l2', 'innerproduct', 'cosinesimil'), 'ivf': ('l2', 'innerproduct', 'cosinesimil')},
    'lucene': {'hnsw': ('l2', 'cosinesimil', 'innerproduct')},
    'nmslib': {'hnsw': ('l2', 'innerproduct', 'cosinesimil', 'l1', 'linf')},
}
# (engine, space) -> first OpenSearch version that supports it
SPACE_MIN_VERSION = {
    ('lucene', 'innerproduct'): (2, 13, 0),
    ('faiss', 'cosinesimil'): (2, 19, 0),
}
NMSLIB_BLOCKED_FROM = (3, 0, 0)
# engine -> method -> allowed parameter names
METHOD_PARAMETERS = {
    ('faiss', 'hnsw'): ('m', 'ef_construction', 'ef_search', 'encoder'),
    ('faiss', 'ivf'): ('nlist', 'nprobes', 'encoder'),
    ('lucene', 'hnsw'): ('m', 'ef_construction'),
    ('nmslib', 'hnsw'): ('m', 'ef_construction'),
}
INT_PARAMETERS = {
    'm': (2, 100),
    'ef_construction': (2, None),
    'ef_search': (1, None),
    'nlist': (1, None),
    'nprobes': (1, None),
}
ENCODERS = ('flat', 'sq', 'pq')

# Index settings that cannot change on an open index (a difference needs recreate=on_change).
STATIC_SETTINGS = frozenset([
    'index.number_of_shards', 'index.knn', 'index.codec', 'index.number_of_routing_shards',
    'index.routing_partition_size', 'index.soft_deletes.enabled', 'index.load_fixed_bitset_filters_eagerly',
    'index.shard.check_on_startup', 'index.replication.type', 'index.knn.derived_source.enabled',
    'index.knn.space_type', 'index.mapping.total_fields.ignore_dynamic_beyond_limit_static',
])
STATIC_SETTING_PREFIXES = ('index.sort.', 'index.analysis.', 'index.similarity.', 'index.store.',
                           'index.remote_store.')
# Settings OpenSearch owns; a user cannot set them.
PRIVATE_SETTINGS = frozenset(['index.uuid', 'index.creation_date', 'index.provided_name', 'index.version.created',
                              'index.version.upgraded'])

# Mapping parameters that PUT _mapping can change on an existing field.
UPDATABLE_FIELD_PARAMS = frozenset(['ignore_above', 'search_analyzer', 'search_quote_analyzer', 'meta',
                                    'ignore_malformed', 'ignore_z_value'])
# Top-level mapping keys that PUT _mapping can change.
UPDATABLE_TOP_LEVEL = frozenset(['dynamic', '_meta', 'date_detection', 'numeric_detection', 'dynamic_templates'])

_INDEX_NAME_FORBIDDEN = re.compile(r'[\\/*?"<>| ,#:A-Z]')


def validate_index_name(name):
    if not name:
        raise OpenSearchError("index: an index name is required")
    bad = sorted(set(_INDEX_NAME_FORBIDDEN.findall(name)))
    if bad:
        raise OpenSearchError("index: %r is not a valid index name: it must be lowercase and must not contain "
                              "spaces or any of \\ / * ? \" < > | , # : (found %s)" % (name, ' '.join(repr(c) for c in bad)))
    if name[0] in '-_+' or name in ('.', '..'):
        raise OpenSearchError("index: %r is not a valid index name: it must not start with -, _ or + "
                              "and must not be '.' or '..'" % name)
    if len(name.encode('utf-8')) > 255:
        raise OpenSearchError("index: the name is longer than 255 bytes")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def validate_method(method, dimension):
    """Check the method/engine/space/parameters combination; returns the method dict to send."""
    name, engine, space = method['name'], method['engine'], method['space_type']
    methods = ENGINE_METHODS[engine]
    if name not in methods:
        raise OpenSearchError("method.name=%s is not available with method.engine=%s; engine %s supports: %s"
                              % (name, engine, engine, ', '.join(sorted(methods))))
    if space not in methods[name]:
        raise OpenSearchError("method.space_type=%s is not supported by engine %s with method %s; allowed: %s"
                              % (space, engine, name, ', '.join(methods[name])))
    params = method.get('parameters') or {}
    if not isinstance(params, dict):
        raise OpenSearchError("method.parameters must be a dict")
    allowed = METHOD_PARAMETERS[(engine, name)]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise OpenSearchError("method.parameters: %s not supported by %s/%s; allowed: %s"
                              % (', '.join(unknown), engine, name, ', '.join(allowed)))
    for key, (low, high) in INT_PARAMETERS.items():
        if key not in params:
            continue
        value = params[key]
        if not _is_int(value) or value < low or (high is not None and value > high):
            rng = '%d..%d' % (low, high) if high is not None else '>= %d' % low
            raise OpenSearchError("method.parameters.%s must be an integer %s, got %r" % (key, rng, value))
    if 'encoder' in params:
        _validate_encoder(params['encoder'], dimension)
    if name == 'ivf':
        raise OpenSearchError(
            "method.name=ivf needs a trained model: OpenSearch rejects an ivf method in a mapping "
            "(\"method\" requires training). Train one with POST /_plugins/_knn/models/<id>/_train and map the "
            "field with model_id (not managed by this module), or use method.name=hnsw")
    return {'name': name, 'engine': engine, 'space_type': space, 'parameters': params}


def _validate_encoder(encoder, dimension):
    if not isinstance(encoder, dict) or encoder.get('name') not in ENCODERS:
        raise OpenSearchError("method.parameters.encoder must be a dict with name one of: %s" % ', '.join(ENCODERS))
    unknown = sorted(set(encoder) - set(['name', 'parameters']))
    if unknown:
        raise OpenSearchError("method.parameters.encoder: unknown key(s) %s; allowed: name, parameters" % ', '.join(unknown))
    eparams = encoder.get('parameters') or {}
    if not isinstance(eparams, dict):
        raise OpenSearchError("method.parameters.encoder.parameters must be a dict")
    if encoder['name'] == 'pq':
        raise OpenSearchError("method.parameters.encoder.name=pq needs a trained model (\"method\" requires "
                              "training); use encoder sq (fp16) or flat, or train a model outside this module")
    if encoder['name'] == 'flat' and eparams:
        raise OpenSearchError("method.parameters.encoder: flat takes no parameters")
    if encoder['name'] == 'sq':
        unknown = sorted(set(eparams) - set(['type', 'clip']))
        if unknown:
            raise OpenSearchError("method.parameters.encoder.parameters: %s not supported by sq; allowed: type, clip"
                                  % ', '.join(unknown))
        if eparams.get('type', 'fp16') != 'fp16':
            raise OpenSearchError("method.parameters.encoder.parameters.type must be fp16, got %r" % eparams.get('type'))
        if 'clip' in eparams and not isinstance(eparams['clip'], bool):
            raise OpenSearchError("method.parameters.encoder.parameters.clip must be a boolean")


def flatten_settings(settings, prefix=''):
    """{'index': {'knn': True}, 'number_of_shards': 1} -> {'index.knn': True, 'index.number_of_shards': 1}."""
    flat = {}
    for key, value in (settings or {}).items():
        full = prefix + str(key)
        if isinstance(value, dict):
            flat.update(flatten_settings(value, full + '.'))
        else:
            flat[full] = value
    if prefix:
        return flat
    out = {}
    for key, value in flat.items():
        out[key if key.startswith('index.') else 'index.' + key] = value
    return out


def norm(value):
    """Normalise JSON values the way OpenSearch echoes them (settings come back as strings)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        return dict((str(k), norm(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [norm(v) for v in value]
    return value


def compact(obj):
    return json.dumps(obj, sort_keys=True, separators=(',', ':'))


def validate_definition(params):
    """Check every parameter and build the desired definition; no network. Returns a dict:
    field, field_mapping, settings (nested body), flat_settings, mappings (full body)."""
    validate_index_name(params['index'])
    field = params['field']
    if not field or '.' in field or field.startswith('_'):
        raise OpenSearchError("field: %r is not usable as the vector field name: it must be non-empty, must not "
                              "contain '.' and must not start with '_'" % field)
    dimension = params['dimension']
    if not _is_int(dimension) or not 1 <= dimension <= MAX_DIMENSION:
        raise OpenSearchError("dimension must be an integer 1..%d, got %r" % (MAX_DIMENSION, dimension))
    method = validate_method(params['method'], dimension)
    field_mapping = {'type': 'knn_vector', 'dimension': dimension, 'method': method}

    settings = params.get('settings') or {}
    if not isinstance(settings, dict):
        raise OpenSearchError("settings must be a dict of index settings")
    flat = flatten_settings(settings)
    for key, value in flat.items():
        if key in PRIVATE_SETTINGS:
            raise OpenSearchError("settings.%s is set by OpenSearch and cannot be given" % key)
        if value is None or isinstance(value, (dict,)):
            raise OpenSearchError("settings.%s: give a value (string, number, boolean or list)" % key)
    if 'index.knn' in flat and norm(flat['index.knn']) != 'true':
        raise OpenSearchError("settings.index.knn must be true (this module manages k-NN indexes), got %r"
                              % flat['index.knn'])
    flat['index.knn'] = True
    for key in ('index.number_of_shards', 'index.number_of_replicas'):
        if key in flat:
            value = flat[key]
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            low = 1 if key.endswith('shards') else 0
            if not _is_int(value) or value < low:
                raise OpenSearchError("settings.%s must be an integer >= %d, got %r" % (key, low, flat[key]))
    nested = {'index': dict((k[len('index.'):], v) for k, v in sorted(flat.items()))}

    mappings = copy.deepcopy(params.get('mappings') or {})
    if not isinstance(mappings, dict):
        raise OpenSearchError("mappings must be a dict (the index mappings body: properties, dynamic, _source...)")
    props = mappings.get('properties', {})
    if not isinstance(props, dict):
        raise OpenSearchError("mappings.properties must be a dict of field name -> field mapping")
    if field in props:
        raise OpenSearchError("mappings.properties.%s: the vector field is defined by field/dimension/method; "
                              "remove it from mappings" % field)
    for name, definition in props.items():
        if '.' in name:
            raise OpenSearchError("mappings.properties.%s: use nested properties ({a: {properties: {b: ...}}}) "
                                  "instead of a dotted field name" % name)
        if not isinstance(definition, dict):
            raise OpenSearchError("mappings.properties.%s must be a dict (for example {type: keyword})" % name)
        if definition.get('type') == 'knn_vector':
            raise OpenSearchError("mappings.properties.%s: this module manages one knn_vector field (%s); "
                                  "other knn_vector fields are not supported" % (name, field))
    props = dict(props)
    props[field] = field_mapping
    mappings['properties'] = props
    return {'field': field, 'field_mapping': field_mapping, 'settings': nested, 'flat_settings': flat,
            'mappings': mappings, 'method': method}


def check_version_support(definition, version, creating):
    """Checks that need the server version. Returns warnings; raises when the server cannot do it."""
    warnings = []
    method = definition['method']
    engine, space = method['engine'], method['space_type']
    need = SPACE_MIN_VERSION.get((engine, space))
    if need and version < need:
        raise OpenSearchError("method.space_type=%s with engine %s needs OpenSearch %s or later; the server runs %s"
                              % (space, engine, '.'.join(map(str, need)), '.'.join(map(str, version))))
    if engine == 'nmslib':
        if creating and version >= NMSLIB_BLOCKED_FROM:
            raise OpenSearchError("method.engine=nmslib cannot create new indexes on OpenSearch 3.0 or later (the server "
                                  "runs %s); use engine faiss or lucene" % '.'.join(map(str, version)))
        warnings.append("method.engine=nmslib is deprecated in OpenSearch (since 2.19) and blocked for new indexes "
                        "from 3.0; prefer faiss or lucene")
    return warnings


# --------------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------------

class Difference:
    """One difference between the index and the request. kind: additive | dynamic | immutable."""

    def __init__(self, path, before, after, kind, target=None):
        self.path = path
        self.before = before
        self.after = after
        self.kind = kind
        # what an in-place fix touches: ('settings', key) | ('top', key) | ('property', name)
        self.target = target

    def as_dict(self):
        return {'path': self.path, 'before': self.before, 'after': self.after, 'change': self.kind}

    def describe(self):
        if self.before is None:
            return '%s: (absent) -> %s' % (self.path, compact(self.after))
        return '%s: %s -> %s' % (self.path, compact(self.before), compact(self.after) if self.after is not None else '(absent)')


def _normalise_knn_field(mapping):
    """Existing knn_vector mapping -> comparable dict (engine None when the mapping does not record one)."""
    mapping = dict(mapping or {})
    method = dict(mapping.pop('method', None) or {})
    top_space = mapping.pop('space_type', None)
    out = {
        'type': mapping.pop('type', None),
        'dimension': mapping.pop('dimension', None),
        'method.name': method.get('name'),
        'method.engine': method.get('engine'),
        'method.space_type': method.get('space_type') or top_space or 'l2',
        'method.parameters': method.get('parameters') or {},
    }
    if norm(mapping.get('data_type', 'float')) == 'float':
        mapping.pop('data_type', None)
    for key, value in mapping.items():
        out[key] = value
    return out


def compare_knn_field(field, desired, actual):
    diffs = []
    if actual is None:
        return [Difference('mappings.properties.%s' % field, None, desired, 'additive', ('property', field))]
    want = _normalise_knn_field(desired)
    have = _normalise_knn_field(actual)
    for key in sorted(set(want) | set(have)):
        if norm(want.get(key)) != norm(have.get(key)):
            diffs.append(Difference('mappings.properties.%s.%s' % (field, key), have.get(key), want.get(key), 'immutable'))
    return diffs


def compare_property(path, desired, actual, target):
    """Differences for one ordinary (non-vector) field mapping; extra fields on the server are kept as they are.

    ``target`` is ('property', <top-level property name>): PUT _mapping resends that whole property.
    """
    if actual is None:
        return [Difference(path, None, desired, 'additive', target)]
    diffs = []
    want_type = desired.get('type', 'object' if 'properties' in desired else None)
    have_type = actual.get('type', 'object' if 'properties' in actual else None)
    if norm(want_type) != norm(have_type):
        return [Difference(path + '.type', have_type, want_type, 'immutable', target)]
    for sub in ('properties', 'fields'):
        wanted = desired.get(sub) or {}
        have = actual.get(sub) or {}
        for name in sorted(wanted):
            diffs.extend(compare_property('%s.%s.%s' % (path, sub, name), wanted[name], have.get(name), target))
    for key in sorted((set(desired) | set(actual)) - set(['type', 'properties', 'fields'])):
        if norm(desired.get(key)) != norm(actual.get(key)):
            kind = 'dynamic' if key in UPDATABLE_FIELD_PARAMS else 'immutable'
            diffs.append(Difference('%s.%s' % (path, key), actual.get(key), desired.get(key), kind, target))
    return diffs


def compare_definition(definition, current):
    """List of Difference between the desired definition and ``current`` ({'settings': flat, 'mappings': ...})."""
    diffs = []
    have_settings = current.get('settings') or {}
    for key, value in sorted(definition['flat_settings'].items()):
        have = have_settings.get(key)
        if have is None or norm(have) != norm(value):
            static = key in STATIC_SETTINGS or key.startswith(STATIC_SETTING_PREFIXES)
            diffs.append(Difference('settings.%s' % key, have, value, 'immutable' if static else 'dynamic',
                                    ('settings', key)))
    want_map = definition['mappings']
    have_map = current.get('mappings') or {}
    for key in sorted(set(want_map) - set(['properties'])):
        if norm(want_map[key]) != norm(have_map.get(key)):
            kind = 'dynamic' if key in UPDATABLE_TOP_LEVEL else 'immutable'
            diffs.append(Difference('mappings.%s' % key, have_map.get(key), want_map[key], kind, ('top', key)))
    have_props = have_map.get('properties') or {}
    field = definition['field']
    for name, wanted in sorted(want_map['properties'].items()):
        if name == field:
            diffs.extend(compare_knn_field(field, wanted, have_props.get(name)))
        else:
            diffs.extend(compare_property('mappings.properties.%s' % name, wanted, have_props.get(name),
                                          ('property', name)))
    return diffs


# --------------------------------------------------------------------------------------------------
# The manager
# --------------------------------------------------------------------------------------------------

class KnnIndexManager:
    """Plans and applies the HTTP calls that make an index match the request."""

    def __init__(self, client, params, check_mode=False):
        self.client = client
        self.params = params
        self.check_mode = check_mode
        self.index = params['index']
        self.actions = []
        self.warnings = []
        self._planned = []

    def current(self):
        """{'settings': flat, 'mappings': {...}} of the index, or None when it does not exist."""
        data = self.client.get_index(self.index)
        if data is None:
            return None
        if not isinstance(data, dict) or not data:
            raise OpenSearchError("GET /%s returned no index: %s" % (self.index, error_reason(data)))
        if self.index not in data:
            raise OpenSearchError("index: %r is an alias or pattern for %s; give the concrete index name"
                                  % (self.index, ', '.join(sorted(data))))
        body = data[self.index]
        return {'settings': body.get('settings') or {}, 'mappings': body.get('mappings') or {},
                'aliases': body.get('aliases') or {}}

    # The changing calls, by (HTTP method, path suffix): what RV(actions) says and what runs.
    _CALLS = {
        ('PUT', ''): 'create_index',
        ('DELETE', ''): 'delete_index',
        ('PUT', '/_settings'): 'put_settings',
        ('PUT', '/_mapping'): 'put_mapping',
    }

    def _plan(self, method, suffix, body=None):
        words = '%s /%s%s' % (method, self.index, suffix)
        if body is not None:
            words += ' ' + compact(body)
        self._planned.append((method, suffix, body))
        self.actions.append(words)

    def _execute(self):
        done = []
        for method, suffix, body in self._planned:
            call = getattr(self.client, self._CALLS[(method, suffix)])
            try:
                if body is None:
                    call(self.index)
                else:
                    call(self.index, body)
            except OpenSearchError as exc:
                msg = str(exc)
                if done:
                    msg += ' (already applied: %s)' % '; '.join(done)
                raise OpenSearchError(msg)
            done.append('%s /%s%s' % (method, self.index, suffix))

    def run(self):
        state = self.params['state']
        definition = None
        if state == 'present':
            definition = validate_definition(self.params)
        else:
            validate_index_name(self.index)
        info = self.client.info()
        version = parse_version(info['version']['number'])
        current = self.current()
        result = {'changed': False, 'actions': self.actions, 'version': info['version']['number'],
                  'differences': []}

        if state == 'absent':
            if current is not None:
                self._plan('DELETE', '')
            before = self._view(current) if current is not None else {}
            if not self.check_mode:
                self._execute()
            result.update(changed=bool(self._planned), index={}, diff={'before': before, 'after': {}})
            return result

        body = {'settings': definition['settings'], 'mappings': definition['mappings']}
        if current is None:
            self.warnings.extend(check_version_support(definition, version, creating=True))
            self._plan('PUT', '', body)
            predicted = {'settings': dict((k, norm(v)) for k, v in definition['flat_settings'].items()),
                         'mappings': definition['mappings']}
            before = {}
        else:
            diffs = compare_definition(definition, current)
            result['differences'] = [d.as_dict() for d in diffs]
            immutable = [d for d in diffs if d.kind == 'immutable']
            before = self._view(current, definition)
            if immutable:
                if self.params['recreate'] != 'on_change':
                    raise OpenSearchError(
                        "index %r differs from the request in ways OpenSearch cannot change in place: %s. "
                        "Set recreate=on_change to delete and recreate the index (this deletes all its documents)"
                        % (self.index, '; '.join(d.describe() for d in immutable)))
                self.warnings.extend(check_version_support(definition, version, creating=True))
                self.warnings.append("recreate=on_change: index %r is deleted and recreated; its documents are lost"
                                     % self.index)
                self._plan('DELETE', '')
                self._plan('PUT', '', body)
                predicted = {'settings': dict((k, norm(v)) for k, v in definition['flat_settings'].items()),
                             'mappings': definition['mappings']}
            else:
                self.warnings.extend(check_version_support(definition, version, creating=False))
                predicted = self._plan_in_place(definition, current, diffs)

        if not self.check_mode and self._planned:
            self._execute()
            after = self.current() or {}
            result['index'] = {'settings': after.get('settings', {}), 'mappings': after.get('mappings', {})}
        elif not self._planned:
            result['index'] = {'settings': current['settings'], 'mappings': current['mappings']}
        else:
            result['index'] = predicted
        result['changed'] = bool(self._planned)
        result['diff'] = {'before': before, 'after': self._view(predicted, definition)}
        return result

    def _plan_in_place(self, definition, current, diffs):
        settings = {}
        top = {}
        props = {}
        for diff in diffs:
            section, key = diff.target
            if section == 'settings':
                settings[key] = diff.after
            elif section == 'property':
                props[key] = definition['mappings']['properties'][key]
            else:
                top[key] = definition['mappings'][key]
        predicted = copy.deepcopy({'settings': current['settings'], 'mappings': current['mappings']})
        if settings:
            body = {'index': dict((k[len('index.'):], v) for k, v in sorted(settings.items()))}
            self._plan('PUT', '/_settings', body)
            predicted['settings'].update(dict((k, norm(v)) for k, v in settings.items()))
        if top or props:
            body = dict(top)
            if props:
                body['properties'] = props
            self._plan('PUT', '/_mapping', body)
            predicted['mappings'].update(top)
            merged = predicted['mappings'].setdefault('properties', {})
            for name, definition_ in props.items():
                merged[name] = _merge_mapping(merged.get(name), definition_)
        return predicted

    @staticmethod
    def _view(state, definition=None):
        """What diff mode shows: the settings the request names (all when none) and the whole mappings."""
        if not state:
            return {}
        settings = state.get('settings') or {}
        if definition is not None:
            settings = dict((k, settings.get(k)) for k in sorted(definition['flat_settings']) if k in settings)
        return {'settings': dict((k, norm(v)) for k, v in settings.items()), 'mappings': state.get('mappings') or {}}


def _merge_mapping(have, want):
    """What PUT _mapping leaves: the existing field mapping with the requested one merged in."""
    if not have:
        return copy.deepcopy(want)
    merged = copy.deepcopy(have)
    for key, value in want.items():
        if key in ('properties', 'fields') and isinstance(value, dict):
            sub = merged.setdefault(key, {})
            for name, definition in value.items():
                sub[name] = _merge_mapping(sub.get(name), definition)
        else:
            merged[key] = copy.deepcopy(value)
    return merged

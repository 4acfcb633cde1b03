"""TEST DOUBLE of the OpenSearch 2.x REST API: not OpenSearch, only the subset aistack.infra uses.

The integration tests run against a REAL OpenSearch node (tests/lib/opensearch_server.py). This double
is kept, in unit tests only, for what that node cannot produce here: HTTPS with client certificates and
HTTP basic authentication (no security plugin in Maven Central's artifacts), a red cluster, servers
older than 2.19 (version-dependent checks), and faiss/nmslib index definitions (no native libraries
for the k-NN plugin, so the real node cannot hold such an index safely). It follows the documented
request and response shapes of OpenSearch 2.x for:

    GET /                                  cluster info (version.distribution = "opensearch")
    GET /_cluster/health                   cluster health (status configurable)
    HEAD|GET|PUT|DELETE /<index>           index exists / get (?flat_settings=true) / create / delete
    GET|PUT /<index>/_mapping              mappings (PUT merges, rejecting changes of immutable parameters)
    GET|PUT /<index>/_settings             settings (PUT rejects static settings on an open index)

It is stateful (indexes live in ``self.indexes``), echoes mappings as they were sent (as OpenSearch does),
returns settings as strings, and answers errors with OpenSearch's error body::

    {"error": {"root_cause": [{"type": ..., "reason": ...}], "type": ..., "reason": ...}, "status": 400}

for ``resource_already_exists_exception``, ``index_not_found_exception`` (404),
``illegal_argument_exception`` (mapping/settings conflicts, unknown settings) and
``mapper_parsing_exception`` (bad mappings, nmslib on 3.x, methods that need training).
Every request is recorded in ``self.requests`` so tests can prove what a module sent (or did not send).

Optional HTTPS (``tls=make_test_pki(dir)``, optionally requiring a client certificate) and HTTP basic
auth (``users={'name': 'password'}``, 401 otherwise).

What it does NOT do: documents, search, aliases, templates, closing indexes, the security plugin beyond
HTTP basic auth. Passing tests against it show that the module speaks the documented protocol, not
that a given OpenSearch release accepts every definition.
"""
import base64
import copy
import json
import os
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

KNOWN_TYPES = {
    'text', 'keyword', 'match_only_text', 'integer', 'long', 'short', 'byte', 'float', 'double', 'half_float',
    'scaled_float', 'unsigned_long', 'boolean', 'date', 'date_nanos', 'object', 'nested', 'flat_object', 'ip',
    'binary', 'geo_point', 'geo_shape', 'knn_vector', 'alias', 'wildcard', 'constant_keyword', 'rank_feature',
    'rank_features', 'token_count', 'completion', 'search_as_you_type', 'join', 'percolator', 'version',
}
DYNAMIC_SETTINGS = {
    'index.number_of_replicas', 'index.auto_expand_replicas', 'index.refresh_interval', 'index.max_result_window',
    'index.max_inner_result_window', 'index.max_rescore_window', 'index.max_docvalue_fields_search',
    'index.max_script_fields', 'index.max_ngram_diff', 'index.max_shingle_diff', 'index.blocks.read_only',
    'index.blocks.read_only_allow_delete', 'index.blocks.read', 'index.blocks.write', 'index.blocks.metadata',
    'index.max_refresh_listeners', 'index.max_terms_count', 'index.max_regex_length', 'index.routing.rebalance.enable',
    'index.routing.allocation.enable', 'index.gc_deletes', 'index.default_pipeline', 'index.final_pipeline',
    'index.hidden', 'index.knn.algo_param.ef_search', 'index.knn.advanced.approximate_threshold',
    'index.mapping.total_fields.limit', 'index.mapping.depth.limit', 'index.mapping.nested_fields.limit',
    'index.translog.durability', 'index.translog.sync_interval', 'index.translog.flush_threshold_size',
    'index.merge.policy.max_merged_segment', 'index.search.idle.after', 'index.priority',
}
STATIC_SETTINGS = {
    'index.number_of_shards', 'index.knn', 'index.codec', 'index.number_of_routing_shards',
    'index.routing_partition_size', 'index.soft_deletes.enabled', 'index.load_fixed_bitset_filters_eagerly',
    'index.shard.check_on_startup', 'index.replication.type',
}
STATIC_PREFIXES = ('index.analysis.', 'index.similarity.', 'index.sort.', 'index.store.')
PRIVATE_SETTINGS = {'index.uuid', 'index.creation_date', 'index.provided_name', 'index.version.created'}
UPDATABLE_FIELD_PARAMS = {'ignore_above', 'search_analyzer', 'search_quote_analyzer', 'meta', 'ignore_malformed'}
UPDATABLE_TOP_LEVEL = {'dynamic', '_meta', 'date_detection', 'numeric_detection', 'dynamic_templates'}
SPACES = {
    'faiss': {'l2', 'innerproduct', 'cosinesimil', 'hamming'},
    'lucene': {'l2', 'cosinesimil', 'innerproduct'},
    'nmslib': {'l2', 'innerproduct', 'cosinesimil', 'l1', 'linf'},
}


class OpenSearchApiError(Exception):
    def __init__(self, status, etype, reason, **extra):
        super().__init__(reason)
        self.status = status
        self.etype = etype
        self.reason = reason
        self.extra = extra

    def body(self):
        cause = dict(type=self.etype, reason=self.reason, **self.extra)
        err = dict(cause)
        err['root_cause'] = [cause]
        return {'error': err, 'status': self.status}


def _setting_str(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, list):
        return [_setting_str(v) for v in value]
    return str(value)


def flatten_settings(body, prefix=''):
    flat = {}
    for key, value in (body or {}).items():
        if isinstance(value, dict):
            flat.update(flatten_settings(value, prefix + key + '.'))
        else:
            flat[prefix + key] = value
    if prefix:
        return flat
    return {(k if k.startswith('index.') else 'index.' + k): v for k, v in flat.items()}


def nest_settings(flat):
    """Flat dotted settings -> OpenSearch's nested form ({"index": {"knn": "true", "knn.algo_param": {...}}})."""
    def build(items):
        groups = {}
        for segs, value in items:
            groups.setdefault(segs[0], []).append((segs[1:], value))
        out = {}
        for head, members in groups.items():
            leaves = [v for s, v in members if not s]
            deeper = [(s, v) for s, v in members if s]
            if leaves and not deeper:
                out[head] = leaves[0]
            elif not leaves:
                out[head] = build(deeper)
            else:
                out[head] = leaves[0]
                joined = build([([head + '.' + s[0]] + s[1:], v) for s, v in deeper])
                out.update(joined)
        return out
    return build([(k.split('.'), v) for k, v in flat.items()])


class OpenSearchDouble:
    """A stateful, in-process OpenSearch REST double on 127.0.0.1 (see the module docstring)."""

    def __init__(self, version='2.19.1', users=None, health='green', cluster_name='aistack-double', tls=None,
                 require_client_cert=False):
        # tls: {'server_cert': path, 'server_key': path, 'ca': path} (see make_test_pki) to serve HTTPS
        self.tls = tls
        self.require_client_cert = require_client_cert
        self.version = version
        self.users = dict(users or {})
        self.health = health
        self.cluster_name = cluster_name
        self.indexes = {}
        self.requests = []
        self.lock = threading.Lock()
        self._server = None
        self._thread = None

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        double = self

        class Handler(_Handler):
            pass
        Handler.double = double
        self._server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self._server.daemon_threads = True
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls['server_cert'], self.tls['server_key'])
            if self.require_client_cert:
                ctx.load_verify_locations(self.tls['ca'])
                ctx.verify_mode = ssl.CERT_REQUIRED
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name='opensearch-double', daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def url(self):
        return '%s://127.0.0.1:%d' % ('https' if self.tls else 'http', self.port)

    def reset(self):
        with self.lock:
            self.indexes.clear()
            self.requests.clear()

    def writes(self):
        """Recorded requests that change state (PUT/POST/DELETE)."""
        return [r for r in self.requests if r['method'] in ('PUT', 'POST', 'DELETE')]

    def version_tuple(self):
        return tuple(int(x) for x in self.version.split('-')[0].split('.')[:3])

    # ------------------------------------------------------------------ API
    def handle(self, method, path, query, body):
        parts = [unquote(p) for p in path.strip('/').split('/') if p]
        if not parts:
            if method in ('GET', 'HEAD'):
                return 200, self.info()
        elif parts == ['_cluster', 'health'] and method == 'GET':
            return 200, self.cluster_health()
        elif len(parts) == 1 and not parts[0].startswith('_'):
            name = parts[0]
            if method == 'HEAD':
                return (200 if name in self.indexes else 404), None
            if method == 'GET':
                return 200, {name: self.get_index(name, query)}
            if method == 'PUT':
                return 200, self.create_index(name, body)
            if method == 'DELETE':
                self._require(name)
                del self.indexes[name]
                return 200, {'acknowledged': True}
        elif len(parts) == 2 and parts[1] == '_mapping':
            name = parts[0]
            if method == 'GET':
                self._require(name)
                return 200, {name: {'mappings': copy.deepcopy(self.indexes[name]['mappings'])}}
            if method in ('PUT', 'POST'):
                return 200, self.put_mapping(name, body)
        elif len(parts) == 2 and parts[1] == '_settings':
            name = parts[0]
            if method == 'GET':
                self._require(name)
                return 200, {name: {'settings': self._settings_view(name, query)}}
            if method == 'PUT':
                return 200, self.put_settings(name, body)
        raise OpenSearchApiError(405 if parts else 400, 'no_handler',
                                 'no handler found for uri [%s] and method [%s]' % (path, method))

    def info(self):
        return {
            'name': 'double-node-1', 'cluster_name': self.cluster_name, 'cluster_uuid': 'double-cluster-uuid',
            'version': {'distribution': 'opensearch', 'number': self.version, 'build_type': 'tar',
                        'build_hash': 'test-double', 'lucene_version': '9.12.1',
                        'minimum_wire_compatibility_version': '7.10.0',
                        'minimum_index_compatibility_version': '7.0.0'},
            'tagline': 'The OpenSearch Project: https://opensearch.org/',
        }

    def cluster_health(self):
        shards = sum(int(i['settings']['index.number_of_shards']) for i in self.indexes.values())
        return {
            'cluster_name': self.cluster_name, 'status': self.health, 'timed_out': False, 'number_of_nodes': 1,
            'number_of_data_nodes': 1, 'discovered_master': True, 'discovered_cluster_manager': True,
            'active_primary_shards': shards, 'active_shards': shards, 'relocating_shards': 0,
            'initializing_shards': 0, 'unassigned_shards': 0 if self.health == 'green' else shards or 1,
            'delayed_unassigned_shards': 0, 'number_of_pending_tasks': 0, 'number_of_in_flight_fetch': 0,
            'task_max_waiting_in_queue_millis': 0,
            'active_shards_percent_as_number': 100.0 if self.health == 'green' else 50.0,
        }

    def _require(self, name):
        if name not in self.indexes:
            raise OpenSearchApiError(404, 'index_not_found_exception', 'no such index [%s]' % name,
                                     index=name, **{'resource.id': name, 'resource.type': 'index_or_alias',
                                                    'index_uuid': '_na_'})

    def _settings_view(self, name, query):
        flat = copy.deepcopy(self.indexes[name]['settings'])
        if query.get('flat_settings', ['false'])[0] == 'true':
            return flat
        return nest_settings(flat)

    def get_index(self, name, query):
        self._require(name)
        idx = self.indexes[name]
        return {'aliases': {}, 'mappings': copy.deepcopy(idx['mappings']),
                'settings': self._settings_view(name, query)}

    def create_index(self, name, body):
        body = body or {}
        if name != name.lower() or any(c in name for c in '\\/*?"<>| ,#:') or name[0] in '-_+':
            raise OpenSearchApiError(400, 'invalid_index_name_exception',
                                     'Invalid index name [%s], must be lowercase' % name, index=name, index_uuid='_na_')
        if name in self.indexes:
            raise OpenSearchApiError(400, 'resource_already_exists_exception',
                                     'index [%s/%s] already exists' % (name, self.indexes[name]['settings']['index.uuid']),
                                     index=name, index_uuid=self.indexes[name]['settings']['index.uuid'])
        for key in body:
            if key not in ('settings', 'mappings', 'aliases'):
                raise OpenSearchApiError(400, 'parse_exception', 'unknown key [%s] for create index' % key)
        flat = flatten_settings(body.get('settings') or {})
        for key in flat:
            self._check_known_setting(key)
            if key in PRIVATE_SETTINGS:
                raise OpenSearchApiError(400, 'illegal_argument_exception',
                                         'private index setting [%s] can not be set explicitly' % key)
        mappings = copy.deepcopy(body.get('mappings') or {})
        knn = _setting_str(flat.get('index.knn', False)) == 'true'
        self._validate_properties(mappings.get('properties') or {}, knn)
        uid = uuid.uuid4().hex[:22]
        settings = {
            'index.number_of_shards': '1', 'index.number_of_replicas': '1', 'index.uuid': uid,
            'index.creation_date': str(int(time.time() * 1000)), 'index.provided_name': name,
            'index.version.created': '136387927',
        }
        settings.update({k: _setting_str(v) for k, v in flat.items()})
        self.indexes[name] = {'settings': settings, 'mappings': mappings}
        return {'acknowledged': True, 'shards_acknowledged': True, 'index': name}

    def _check_known_setting(self, key):
        if key in DYNAMIC_SETTINGS or key in STATIC_SETTINGS or key in PRIVATE_SETTINGS \
                or key.startswith(STATIC_PREFIXES) or key.startswith('index.routing.allocation.'):
            return
        raise OpenSearchApiError(400, 'illegal_argument_exception',
                                 'unknown setting [%s] please check that any required plugins are installed, or check '
                                 'the breaking changes documentation for removed settings' % key)

    def _validate_properties(self, props, knn, prefix=''):
        for field, definition in props.items():
            if not isinstance(definition, dict):
                raise OpenSearchApiError(400, 'mapper_parsing_exception',
                                         'Expected map for property [fields] on field [%s] but got a class java.lang.String'
                                         % field)
            ftype = definition.get('type', 'object' if 'properties' in definition else None)
            if ftype is None:
                raise OpenSearchApiError(400, 'mapper_parsing_exception', 'No type specified for field [%s]' % field)
            if ftype not in KNOWN_TYPES:
                raise OpenSearchApiError(400, 'mapper_parsing_exception',
                                         'No handler for type [%s] declared on field [%s]' % (ftype, field))
            if ftype == 'knn_vector':
                self._validate_knn(prefix + field, definition)
            if 'properties' in definition:
                self._validate_properties(definition['properties'], knn, prefix + field + '.')

    def _validate_knn(self, field, definition):
        dim = definition.get('dimension')
        if dim is None and 'model_id' not in definition:
            raise OpenSearchApiError(400, 'mapper_parsing_exception', 'Dimension value missing for vector: %s' % field)
        if not isinstance(dim, int) or dim < 1:
            raise OpenSearchApiError(400, 'mapper_parsing_exception',
                                     'Dimension value must be greater than 0 for vector: %s' % field)
        if dim > 16000:
            raise OpenSearchApiError(400, 'mapper_parsing_exception',
                                     'Dimension value cannot be greater than 16000 for vector: %s' % field)
        method = definition.get('method')
        if method is None:
            return
        engine = method.get('engine', 'faiss' if self.version_tuple() >= (2, 18, 0) else 'nmslib')
        if engine not in SPACES:
            raise OpenSearchApiError(400, 'mapper_parsing_exception',
                                     'Failed to parse mapping [_doc]: Invalid engine type: %s' % engine)
        if engine == 'nmslib' and self.version_tuple() >= (3, 0, 0):
            raise OpenSearchApiError(400, 'mapper_parsing_exception',
                                     'Failed to parse mapping [_doc]: nmslib engine is deprecated in OpenSearch  and '
                                     'cannot be used for new index creation in OpenSearch from  3.0.0.')
        space = method.get('space_type', definition.get('space_type', 'l2'))
        if space not in SPACES[engine]:
            raise OpenSearchApiError(400, 'mapper_parsing_exception',
                                     'Failed to parse mapping [_doc]: Validation Failed: 1: "%s" with "%s" configuration '
                                     'does not support space type: "%s".;' % (engine, method.get('name'), space))
        if method.get('name') == 'ivf' or (method.get('parameters') or {}).get('encoder', {}).get('name') == 'pq':
            raise OpenSearchApiError(400, 'mapper_parsing_exception',
                                     'Failed to parse mapping [_doc]: Validation Failed: 1: "method" requires training.;')

    def put_mapping(self, name, body):
        self._require(name)
        body = copy.deepcopy(body or {})
        current = self.indexes[name]['mappings']
        knn = self.indexes[name]['settings'].get('index.knn') == 'true'
        self._validate_properties(body.get('properties') or {}, knn)
        merged = copy.deepcopy(current)
        for key, value in body.items():
            if key == 'properties':
                continue
            if key in current and current[key] != value and key not in UPDATABLE_TOP_LEVEL:
                raise OpenSearchApiError(400, 'illegal_argument_exception',
                                         'Mapper for [%s] conflicts with existing mapper:\n\tCannot update parameter [%s] '
                                         'from [%s] to [%s]' % (key, key, current[key], value))
            merged[key] = value
        props = merged.setdefault('properties', {})
        for field, definition in (body.get('properties') or {}).items():
            props[field] = self._merge_field(field, props.get(field), definition)
        self.indexes[name]['mappings'] = merged
        return {'acknowledged': True}

    def _merge_field(self, field, have, want):
        if have is None:
            return want
        have_type = have.get('type', 'object' if 'properties' in have else None)
        want_type = want.get('type', 'object' if 'properties' in want else None)
        if have_type != want_type:
            raise OpenSearchApiError(400, 'illegal_argument_exception',
                                     'mapper [%s] cannot be changed from type [%s] to [%s]' % (field, have_type, want_type))
        merged = copy.deepcopy(have)
        for key in sorted(set(have) | set(want)):
            if key in ('properties', 'fields'):
                sub = merged.setdefault(key, {})
                for name, definition in (want.get(key) or {}).items():
                    sub[name] = self._merge_field('%s.%s' % (field, name), sub.get(name), definition)
                continue
            if key == 'type':
                continue
            if have.get(key) != want.get(key):
                if key not in UPDATABLE_FIELD_PARAMS:
                    raise OpenSearchApiError(400, 'illegal_argument_exception',
                                             'Mapper for [%s] conflicts with existing mapper:\n\tCannot update parameter '
                                             '[%s] from [%s] to [%s]' % (field, key, _j(have.get(key)), _j(want.get(key))))
                if key in want:
                    merged[key] = want[key]
        return merged

    def put_settings(self, name, body):
        self._require(name)
        body = body or {}
        flat = flatten_settings(body['settings'] if isinstance(body.get('settings'), dict) else body)
        idx = self.indexes[name]
        static = []
        for key, value in flat.items():
            self._check_known_setting(key)
            if key in PRIVATE_SETTINGS:
                raise OpenSearchApiError(400, 'illegal_argument_exception',
                                         'final %s setting [%s], not updateable' % (name, key))
            if key in STATIC_SETTINGS or key.startswith(STATIC_PREFIXES):
                static.append(key)
        if static:
            raise OpenSearchApiError(400, 'illegal_argument_exception',
                                     "Can't update non dynamic settings [[%s]] for open indices [[%s/%s]]"
                                     % (', '.join(sorted(static)), name, idx['settings']['index.uuid']))
        idx['settings'].update({k: _setting_str(v) for k, v in flat.items()})
        return {'acknowledged': True}


def _j(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


class _Handler(BaseHTTPRequestHandler):
    double = None
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):  # keep pytest output quiet
        pass

    def _dispatch(self):
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        length = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(length) if length else b''
        double = self.double
        body = None
        if raw:
            try:
                body = json.loads(raw.decode('utf-8'))
            except ValueError:
                return self._send(400, OpenSearchApiError(400, 'parse_exception', 'request body is not JSON').body())
        with double.lock:
            double.requests.append({'method': self.command, 'path': parts.path, 'query': parts.query, 'body': body,
                                    'content_type': self.headers.get('Content-Type')})
            if double.users and not self._authorised():
                return self._send(401, 'Unauthorized', extra={'WWW-Authenticate': 'Basic realm="OpenSearch Security"'})
            try:
                status, payload = double.handle(self.command, parts.path, query, body)
            except OpenSearchApiError as exc:
                status, payload = exc.status, exc.body()
        if self.command == 'HEAD':
            payload = None
        self._send(status, payload)

    def _authorised(self):
        header = self.headers.get('Authorization') or ''
        if not header.startswith('Basic '):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode('utf-8').partition(':')
        except ValueError:
            return False
        return self.double.users.get(user) == password

    def _send(self, status, payload, extra=None):
        if payload is None:
            data, ctype = b'', 'application/json; charset=UTF-8'
        elif isinstance(payload, str):
            data, ctype = payload.encode('utf-8'), 'text/plain; charset=UTF-8'
        else:
            data, ctype = json.dumps(payload).encode('utf-8'), 'application/json; charset=UTF-8'
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _dispatch


def make_test_pki(directory):
    """Throw-away PKI for TLS tests: a CA, a server certificate for 'search.test' (deliberately not 127.0.0.1,
    so hostname checks can be exercised) and a client certificate; returns the PEM file paths."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def write(name, data):
        path = os.path.join(directory, name)
        with open(path, 'wb') as handle:
            handle.write(data)
        return path

    def key_pem(key):
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'aistack test CA')])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))

    def leaf(common_name, usage, san=None):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    server, server_key = leaf('search.test', ExtendedKeyUsageOID.SERVER_AUTH, san='search.test')
    client, client_key = leaf('probe', ExtendedKeyUsageOID.CLIENT_AUTH)
    return {
        'ca': write('ca.pem', ca.public_bytes(serialization.Encoding.PEM)),
        'server_cert': write('server.pem', server.public_bytes(serialization.Encoding.PEM)),
        'server_key': write('server.key', key_pem(server_key)),
        'client_cert': write('client.pem', client.public_bytes(serialization.Encoding.PEM)),
        'client_key': write('client.key', key_pem(client_key)),
    }

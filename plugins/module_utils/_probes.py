# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed health probes and their concurrent runner, behind ``aistack.infra.service_health``.

Private to aistack.infra. One class per probe type; ``build_probes`` validates the user's probe list
(every message names the probe, the option and the allowed options) before anything runs, and
``ProbeRunner`` runs the probes in threads, each with its retries and delay, under one overall timeout.

Probes only read: HTTP requests are the user's, the kafka probe never lets the broker auto-create
topics, PostgreSQL sessions are read-only.

Libraries: the http, tcp, redis and docker_container probes need nothing beyond the Python standard
library (redis speaks its wire protocol directly; docker_container uses the docker SDK when it is
installed and the engine's unix socket API otherwise). postgres needs psycopg2, milvus needs pymilvus,
opensearch needs opensearch-py and kafka needs kafka-python: when missing, only that probe fails, with a
message saying what to install.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import json
import math
import os
import socket
import threading
import time

from urllib.parse import quote, urlsplit

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.aistack.infra.plugins.module_utils._http import (
    basic_auth_header,
    build_ssl_context,
    http_request,
    mask_url,
)
from ansible_collections.aistack.infra.plugins.module_utils._opensearch import (
    HAS_OPENSEARCHPY,
    OPENSEARCHPY_LIBRARY,
    OpenSearchClient,
    OpenSearchError,
)

# Optional client libraries, imported on first use: pymilvus alone takes seconds to import and most
# runs need none of them. Maps name -> module, or False when it is not installed.
_LIBRARIES = {}


def optional_library(name):
    """The module ``name`` (psycopg2, pymilvus, docker), or None when it is not installed."""
    if name not in _LIBRARIES:
        try:
            _LIBRARIES[name] = importlib.import_module(name)
        except ImportError:
            _LIBRARIES[name] = False
    return _LIBRARIES[name] or None


class ProbeError(Exception):
    """Invalid probe definitions (the module fails before running anything)."""


class ProbeFailure(Exception):
    """A probe ran and the service is not healthy; ``detail`` says what was seen."""

    def __init__(self, message, detail=None):
        Exception.__init__(self, message)
        self.detail = detail or {}


COMMON_OPTIONS = ('name', 'type', 'retries', 'delay', 'timeout')
DEFAULT_PROBE_TIMEOUT = 10.0


def probe_option_spec():
    """Argument spec of one probe: the union of every type's options (each type accepts its own subset,
    checked by ``build_probes``). Declared so that Ansible masks ``password`` and ``token`` (no_log)."""
    return dict(
        name=dict(type='str'),
        type=dict(type='str'),
        retries=dict(type='int'),
        delay=dict(type='float'),
        timeout=dict(type='float'),
        # http
        url=dict(type='str'),
        method=dict(type='str'),
        status=dict(type='raw'),
        body_contains=dict(type='str'),
        json_path=dict(type='str'),
        json_equals=dict(type='raw'),
        headers=dict(type='dict'),
        body=dict(type='raw'),
        validate_certs=dict(type='bool'),
        ca_path=dict(type='path'),
        client_cert=dict(type='path'),
        client_key=dict(type='path', no_log=False),
        # shared by several
        host=dict(type='str'),
        port=dict(type='int'),
        user=dict(type='str'),
        password=dict(type='str', no_log=True),
        db=dict(type='str'),
        tls=dict(type='bool'),
        # postgres
        ssl_mode=dict(type='str'),
        extension=dict(type='str'),
        # milvus
        uri=dict(type='str'),
        token=dict(type='str', no_log=True),
        collection=dict(type='str'),
        # opensearch
        hosts=dict(type='list', elements='str'),
        min_status=dict(type='str'),
        # kafka
        bootstrap_servers=dict(type='list', elements='str'),
        topics=dict(type='list', elements='str'),
        security_protocol=dict(type='str'),
        sasl_mechanism=dict(type='str'),
        # docker_container
        container=dict(type='str'),
        docker_host=dict(type='str'),
        expect=dict(type='str'),
    )


def _port_ok(value):
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def split_host_port(value, default_port=None):
    """'host:port' / '[::1]:9092' -> (host, port). Raises ValueError."""
    value = (value or '').strip()
    if value.startswith('['):
        host, sep, rest = value[1:].partition(']')
        port = rest[1:] if rest.startswith(':') else ''
    else:
        host, sep, port = value.rpartition(':')
        if not sep:
            host, port = value, ''
    if not port:
        if default_port is None:
            raise ValueError('no port')
        return host, default_port
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError('bad host:port')
    return host, int(port)


class Probe:
    """Base class: ``OPTIONS`` maps each option of the type to {'required': bool, 'default': value}."""

    TYPE = None
    OPTIONS = {}

    def __init__(self, name, options, retries=0, delay=1.0, timeout=DEFAULT_PROBE_TIMEOUT):
        self.name = name
        self.opts = options
        self.retries = retries
        self.delay = delay
        self.timeout = timeout

    def validate(self):
        """Value checks; returns a list of 'option: problem' strings."""
        return []

    def check(self, timeout):
        """Run once within ``timeout`` seconds; return a detail dict or raise ProbeFailure."""
        raise NotImplementedError

    def _tls_context(self):
        return build_ssl_context(self.opts.get('validate_certs', True) is not False, self.opts.get('ca_path'),
                                 self.opts.get('client_cert'), self.opts.get('client_key'))


# ------------------------------------------------------------------------------------------ http
HTTP_METHODS = ('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH')
MAX_HTTP_BODY = 1024 * 1024


def json_lookup(document, path):
    """Follow a dotted path ('data.items.0.name') through dicts and lists. Raises KeyError with a reason."""
    value = document
    walked = []
    for part in [p for p in (path or '').split('.') if p != '']:
        if isinstance(value, list):
            try:
                index = int(part)
                value = value[index]
            except ValueError:
                raise KeyError("'%s' is a list; %r is not an index" % ('.'.join(walked) or '$', part))
            except IndexError:
                raise KeyError("'%s' has %d element(s), no index %s" % ('.'.join(walked) or '$', len(value), part))
        elif isinstance(value, dict):
            if part not in value:
                keys = ', '.join(sorted(str(k) for k in value)[:20])
                raise KeyError("'%s' has no key %r (keys: %s)" % ('.'.join(walked) or '$', part, keys or 'none'))
            value = value[part]
        else:
            raise KeyError("'%s' is %s, not an object or list" % ('.'.join(walked) or '$', json.dumps(value)))
        walked.append(part)
    return value


def _excerpt(text, limit=200):
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + '...'


class HttpProbe(Probe):
    TYPE = 'http'
    OPTIONS = {
        'url': {'required': True}, 'method': {'default': 'GET'}, 'status': {'default': [200]},
        'body_contains': {}, 'json_path': {}, 'json_equals': {}, 'headers': {'default': {}}, 'body': {},
        'validate_certs': {'default': True}, 'ca_path': {}, 'client_cert': {}, 'client_key': {},
        'user': {}, 'password': {},
    }

    def validate(self):
        errors = []
        o = self.opts
        try:
            parts = urlsplit(o['url'])
            if parts.scheme not in ('http', 'https') or not parts.hostname:
                errors.append("url: %r must be an http:// or https:// URL with a host" % mask_url(o['url']))
        except ValueError as exc:
            errors.append("url: %s" % exc)
        o['method'] = str(o['method']).upper()
        if o['method'] not in HTTP_METHODS:
            errors.append("method: %r is not one of %s" % (o['method'], ', '.join(HTTP_METHODS)))
        statuses = o['status'] if isinstance(o['status'], list) else [o['status']]
        try:
            o['status'] = [int(s) for s in statuses]
            if not o['status'] or any(not 100 <= s <= 599 for s in o['status']):
                raise ValueError
        except (TypeError, ValueError):
            errors.append("status: %r must be an HTTP status code (100-599) or a list of them" % (statuses,))
        if o['json_equals'] is not None and o['json_path'] is None:
            errors.append("json_equals: needs json_path (the dotted path of the value to compare)")
        if o['client_key'] and not o['client_cert']:
            errors.append("client_key: needs client_cert")
        if o['password'] is not None and o['user'] is None:
            errors.append("password: needs user")
        return errors

    def check(self, timeout):
        o = self.opts
        url = o['url']
        headers = dict((str(k), str(v)) for k, v in (o['headers'] or {}).items())
        if o['user'] is not None:
            headers['Authorization'] = basic_auth_header(o['user'], o['password'] or '')
        detail = {'url': mask_url(url), 'method': o['method']}
        try:
            ctx = self._tls_context() if url.lower().startswith('https') else None
            resp = http_request(o['method'], url, body=o['body'], headers=headers, timeout=timeout,
                                ssl_context=ctx, max_body=MAX_HTTP_BODY)
        except socket.timeout:
            raise ProbeFailure('%s %s: no answer within %.1fs' % (o['method'], mask_url(url), timeout), detail)
        except Exception as exc:  # OSError, ssl errors, http.client errors
            raise ProbeFailure('%s %s: %s' % (o['method'], mask_url(url), exc or type(exc).__name__), detail)
        text = resp.body.decode('utf-8', 'replace')
        detail['status'] = resp.status
        if resp.status not in o['status']:
            detail['body_excerpt'] = _excerpt(text)
            raise ProbeFailure('HTTP %d from %s, expected %s' % (resp.status, mask_url(url),
                                                                 ' or '.join(str(s) for s in o['status'])), detail)
        if o['body_contains'] is not None and o['body_contains'] not in text:
            detail['body_excerpt'] = _excerpt(text)
            raise ProbeFailure('response body does not contain %r' % o['body_contains'], detail)
        if o['json_path'] is not None:
            try:
                document = json.loads(text)
            except ValueError as exc:
                detail['body_excerpt'] = _excerpt(text)
                raise ProbeFailure('response is not JSON (%s)' % exc, detail)
            try:
                value = json_lookup(document, o['json_path'])
            except KeyError as exc:
                raise ProbeFailure('json_path %r not found: %s' % (o['json_path'], exc.args[0]), detail)
            detail['json_value'] = value
            if o['json_equals'] is not None and value != o['json_equals']:
                raise ProbeFailure('json_path %r is %s, expected %s' % (o['json_path'], json.dumps(value),
                                                                        json.dumps(o['json_equals'])), detail)
        return detail


# ------------------------------------------------------------------------------------------- tcp
class TcpProbe(Probe):
    TYPE = 'tcp'
    OPTIONS = {'host': {'required': True}, 'port': {'required': True}}

    def validate(self):
        return [] if _port_ok(self.opts['port']) else ["port: %r must be 1-65535" % self.opts['port']]

    def check(self, timeout):
        host, port = self.opts['host'], self.opts['port']
        try:
            sock = socket.create_connection((host, port), timeout)
        except socket.timeout:
            raise ProbeFailure('%s:%d: no TCP answer within %.1fs' % (host, port, timeout))
        except OSError as exc:
            raise ProbeFailure('cannot connect to %s:%d: %s' % (host, port, exc))
        try:
            peer = sock.getpeername()
        finally:
            sock.close()
        return {'address': '%s:%d' % (host, port), 'peer': '%s:%d' % (peer[0], peer[1])}


# -------------------------------------------------------------------------------------- postgres
SSL_MODES = ('disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full')


class PostgresProbe(Probe):
    TYPE = 'postgres'
    OPTIONS = {
        'host': {'default': 'localhost'}, 'port': {'default': 5432}, 'user': {'default': 'postgres'},
        'password': {}, 'db': {'default': 'postgres'}, 'ssl_mode': {'default': 'prefer'}, 'ca_path': {},
        'extension': {},
    }

    def validate(self):
        errors = []
        if not _port_ok(self.opts['port']):
            errors.append("port: %r must be 1-65535" % self.opts['port'])
        if self.opts['ssl_mode'] not in SSL_MODES:
            errors.append("ssl_mode: %r is not one of %s" % (self.opts['ssl_mode'], ', '.join(SSL_MODES)))
        return errors

    def check(self, timeout):
        o = self.opts
        where = '%s:%d/%s' % (o['host'], o['port'], o['db'])
        psycopg2 = optional_library('psycopg2')
        if psycopg2 is None:
            raise ProbeFailure(missing_required_lib('psycopg2 (pip package psycopg2-binary)'), {'database': where})
        kwargs = dict(host=o['host'], port=o['port'], user=o['user'], dbname=o['db'], sslmode=o['ssl_mode'],
                      connect_timeout=max(2, int(math.ceil(timeout))), application_name='aistack-service-health',
                      options='-c statement_timeout=%d' % max(1, int(timeout * 1000)))
        if o['password'] is not None:
            kwargs['password'] = o['password']
        if o['ca_path']:
            kwargs['sslrootcert'] = o['ca_path']
        detail = {'database': where, 'user': o['user']}
        try:
            conn = psycopg2.connect(**kwargs)
        except psycopg2.Error as exc:
            raise ProbeFailure('cannot connect to PostgreSQL %s as %s: %s'
                               % (where, o['user'], str(exc).strip().splitlines()[0] if str(exc).strip() else exc), detail)
        try:
            conn.set_session(readonly=True, autocommit=True)
            cur = conn.cursor()
            cur.execute('SELECT 1')
            cur.fetchone()
            cur.execute('SHOW server_version')
            detail['server_version'] = cur.fetchone()[0]
            if o['extension']:
                cur.execute('SELECT extversion FROM pg_extension WHERE extname = %s', (o['extension'],))
                row = cur.fetchone()
                if row is None:
                    cur.execute('SELECT default_version FROM pg_available_extensions WHERE name = %s', (o['extension'],))
                    available = cur.fetchone()
                    hint = ('available (version %s): CREATE EXTENSION %s' % (available[0], o['extension'])
                            if available else 'not even available on the server')
                    raise ProbeFailure("extension %r is not installed in database %r (%s)"
                                       % (o['extension'], o['db'], hint), detail)
                detail['extension_version'] = row[0]
        except psycopg2.Error as exc:
            raise ProbeFailure('query on %s failed: %s' % (where, str(exc).strip()), detail)
        finally:
            conn.close()
        return detail


# ---------------------------------------------------------------------------------------- milvus
class MilvusProbe(Probe):
    TYPE = 'milvus'
    OPTIONS = {'uri': {'required': True}, 'token': {}, 'user': {}, 'password': {}, 'db': {}, 'collection': {}}

    def validate(self):
        errors = []
        scheme = urlsplit(self.opts['uri']).scheme
        if scheme not in ('http', 'https', 'tcp', 'grpc'):
            errors.append("uri: %r must be a server address (http://host:19530, https://..., tcp://...); local "
                          "milvus-lite files are not probed" % mask_url(self.opts['uri']))
        if self.opts['token'] is not None and (self.opts['user'] is not None or self.opts['password'] is not None):
            errors.append("token: give either token or user/password, not both")
        if self.opts['password'] is not None and self.opts['user'] is None:
            errors.append("password: needs user")
        return errors

    def check(self, timeout):
        o = self.opts
        detail = {'uri': mask_url(o['uri'])}
        if o['db']:
            detail['db'] = o['db']
        pymilvus = optional_library('pymilvus')
        if pymilvus is None:
            raise ProbeFailure(missing_required_lib('pymilvus'), detail)
        client = None
        try:
            client = pymilvus.MilvusClient(uri=o['uri'], user=o['user'] or '', password=o['password'] or '',
                                           db_name=o['db'] or '', token=o['token'] or '', timeout=timeout)
            detail['server_version'] = client.get_server_version(timeout=timeout)
            if o['collection']:
                detail['collection'] = o['collection']
                if not client.has_collection(o['collection'], timeout=timeout):
                    raise ProbeFailure('collection %r does not exist' % o['collection'], detail)
                state = client.get_load_state(o['collection'], timeout=timeout).get('state')
                detail['load_state'] = getattr(state, 'name', str(state))
                if detail['load_state'] != 'Loaded':
                    raise ProbeFailure('collection %r is not loaded (load state %s)'
                                       % (o['collection'], detail['load_state']), detail)
        except ProbeFailure:
            raise
        except Exception as exc:  # pymilvus raises MilvusException and gRPC errors
            raise ProbeFailure('Milvus at %s: %s' % (mask_url(o['uri']), _one_line(exc)), detail)
        finally:
            if client is not None:
                try:
                    client.close()
                except Exception:
                    pass
        return detail


def _one_line(exc):
    text = str(exc).strip() or type(exc).__name__
    return ' '.join(text.split())[:500]


# ------------------------------------------------------------------------------------ opensearch
HEALTH_RANK = {'red': 0, 'yellow': 1, 'green': 2}


class OpenSearchProbe(Probe):
    TYPE = 'opensearch'
    OPTIONS = {
        'hosts': {}, 'url': {}, 'user': {}, 'password': {}, 'validate_certs': {'default': True}, 'ca_path': {},
        'client_cert': {}, 'client_key': {}, 'min_status': {'default': 'yellow'},
    }

    def validate(self):
        errors = []
        o = self.opts
        if (o['hosts'] is None) == (o['url'] is None):
            errors.append("hosts/url: give exactly one of hosts (list of URLs) or url")
        if o['min_status'] not in ('yellow', 'green'):
            errors.append("min_status: %r is not one of yellow, green" % o['min_status'])
        if o['password'] is not None and o['user'] is None:
            errors.append("password: needs user")
        return errors

    def check(self, timeout):
        o = self.opts
        hosts = o['hosts'] or [o['url']]
        detail = {'hosts': [mask_url(h) for h in hosts]}
        if not HAS_OPENSEARCHPY:
            raise ProbeFailure(missing_required_lib(OPENSEARCHPY_LIBRARY), detail)
        try:
            client = OpenSearchClient(hosts, user=o['user'], password=o['password'], verify_certs=o['validate_certs'],
                                      ca_certs=o['ca_path'], client_cert=o['client_cert'], client_key=o['client_key'],
                                      timeout=timeout)
            health = client.cluster_health()
        except OpenSearchError as exc:
            raise ProbeFailure(str(exc), detail)
        status = (health or {}).get('status')
        detail.update(cluster_name=health.get('cluster_name'), status=status,
                      number_of_nodes=health.get('number_of_nodes'),
                      unassigned_shards=health.get('unassigned_shards'),
                      active_shards_percent=health.get('active_shards_percent_as_number'))
        if HEALTH_RANK.get(status, -1) < HEALTH_RANK[o['min_status']]:
            raise ProbeFailure('cluster %r is %s, expected %s%s (unassigned shards: %s)'
                               % (health.get('cluster_name'), status, o['min_status'],
                                  ' or green' if o['min_status'] == 'yellow' else '', health.get('unassigned_shards')),
                               detail)
        return detail


# ----------------------------------------------------------------------------------------- kafka
KAFKA_PROTOCOLS = ('PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL')
KAFKA_SASL_MECHANISMS = ('PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512')


class KafkaProbe(Probe):
    """Brokers and topics through kafka-python's admin client (module_utils/_kafka.py), over PLAINTEXT, SSL,
    SASL_PLAINTEXT or SASL_SSL. kafka-python is imported on first use: it takes a second to import."""

    TYPE = 'kafka'
    OPTIONS = {'bootstrap_servers': {'required': True}, 'topics': {'default': []}, 'tls': {'default': False},
               'security_protocol': {}, 'sasl_mechanism': {'default': 'SCRAM-SHA-512'}, 'user': {}, 'password': {},
               'validate_certs': {'default': True}, 'ca_path': {}, 'client_cert': {}, 'client_key': {}}

    def protocol(self):
        """security_protocol, or from tls and user: SASL_SSL, SSL, SASL_PLAINTEXT or PLAINTEXT."""
        o = self.opts
        if o['security_protocol']:
            return o['security_protocol']
        if o['tls']:
            return 'SASL_SSL' if o['user'] is not None else 'SSL'
        return 'SASL_PLAINTEXT' if o['user'] is not None else 'PLAINTEXT'

    def validate(self):
        errors = []
        o = self.opts
        servers = o['bootstrap_servers'] or []
        if not servers:
            errors.append("bootstrap_servers: give at least one host:port")
        for server in servers:
            try:
                split_host_port(server)
            except ValueError:
                errors.append("bootstrap_servers: %r is not host:port" % server)
        protocol = o['security_protocol']
        if protocol is not None and protocol not in KAFKA_PROTOCOLS:
            errors.append("security_protocol: %r is not one of %s" % (protocol, ', '.join(KAFKA_PROTOCOLS)))
            return errors
        if protocol and o['tls'] and protocol not in ('SSL', 'SASL_SSL'):
            errors.append("tls: true contradicts security_protocol %s (leave tls out)" % protocol)
        if o['sasl_mechanism'] not in KAFKA_SASL_MECHANISMS:
            errors.append("sasl_mechanism: %r is not one of %s" % (o['sasl_mechanism'], ', '.join(KAFKA_SASL_MECHANISMS)))
        if self.protocol().startswith('SASL_'):
            if o['user'] is None or o['password'] is None:
                errors.append("user/password: security_protocol %s needs both (the SASL user)" % self.protocol())
        elif o['user'] is not None or o['password'] is not None:
            errors.append("user/password: only used with security_protocol SASL_SSL or SASL_PLAINTEXT, not %s"
                          % self.protocol())
        if o['client_key'] and not o['client_cert']:
            errors.append("client_key: needs client_cert")
        return errors

    def check(self, timeout):
        from ansible_collections.aistack.infra.plugins.module_utils import _kafka

        o = self.opts
        protocol = self.protocol()
        detail = {'bootstrap_servers': list(o['bootstrap_servers']), 'security_protocol': protocol}
        if not _kafka.HAS_KAFKA:
            raise ProbeFailure(missing_required_lib('kafka-python'), detail)
        params = dict(bootstrap_servers=o['bootstrap_servers'], security_protocol=protocol,
                      sasl_mechanism=o['sasl_mechanism'], sasl_username=o['user'], sasl_password=o['password'],
                      ssl_cafile=o['ca_path'], ssl_certfile=o['client_cert'], ssl_keyfile=o['client_key'],
                      ssl_check_hostname=o['validate_certs'] is not False, request_timeout=timeout)
        admin = None
        try:
            admin = _kafka.connect_admin(params, client_id='aistack-service-health',
                                         verify=o['validate_certs'] is not False, deadline=time.monotonic() + timeout)
            found, problems = _kafka.cluster_health(admin, list(o['topics'] or []))
        except _kafka.KafkaError as exc:
            raise ProbeFailure(exc.msg, detail)
        except Exception as exc:  # kafka-python's errors during the metadata requests
            raise ProbeFailure('Kafka at %s: %s' % (', '.join(o['bootstrap_servers']), _one_line(exc)), detail)
        finally:
            _kafka.close_quietly(admin)
        detail.update(found)
        if problems:
            raise ProbeFailure('; '.join(problems), detail)
        return detail


# ----------------------------------------------------------------------------------------- redis
def resp_command(*args):
    out = [b'*%d\r\n' % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode('utf-8')
        out.append(b'$%d\r\n%s\r\n' % (len(raw), raw))
    return b''.join(out)


class _LineReader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b''

    def line(self):
        while b'\r\n' not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError('connection closed by the server')
            self.buf += chunk
            if len(self.buf) > 1024 * 1024:
                raise ValueError('RESP line too long')
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def reply(self):
        """(kind, value): kind is '+', '-', ':' or '$' (bulk string, None when null)."""
        line = self.line()
        kind, rest = line[:1].decode('ascii', 'replace'), line[1:].decode('utf-8', 'replace')
        if kind == '$':
            length = int(rest)
            if length < 0:
                return kind, None
            while len(self.buf) < length + 2:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise ConnectionError('connection closed by the server')
                self.buf += chunk
            value, self.buf = self.buf[:length], self.buf[length + 2:]
            return kind, value.decode('utf-8', 'replace')
        if kind in ('+', '-', ':'):
            return kind, rest
        raise ValueError('unexpected RESP reply %r' % line[:40])


class RedisProbe(Probe):
    TYPE = 'redis'
    OPTIONS = {'host': {'default': 'localhost'}, 'port': {'default': 6379}, 'user': {}, 'password': {},
               'tls': {'default': False}, 'validate_certs': {'default': True}, 'ca_path': {}}

    def validate(self):
        errors = []
        if not _port_ok(self.opts['port']):
            errors.append("port: %r must be 1-65535" % self.opts['port'])
        if self.opts['user'] is not None and self.opts['password'] is None:
            errors.append("user: needs password (Redis AUTH user password)")
        return errors

    def check(self, timeout):
        o = self.opts
        where = '%s:%d' % (o['host'], o['port'])
        detail = {'address': where}
        try:
            sock = socket.create_connection((o['host'], o['port']), timeout)
        except socket.timeout:
            raise ProbeFailure('%s: no TCP answer within %.1fs' % (where, timeout), detail)
        except OSError as exc:
            raise ProbeFailure('cannot connect to Redis at %s: %s' % (where, exc), detail)
        try:
            sock.settimeout(timeout)
            if o['tls']:
                sock = self._tls_context().wrap_socket(sock, server_hostname=o['host'])
            reader = _LineReader(sock)
            if o['password'] is not None:
                args = ['AUTH', o['user'], o['password']] if o['user'] is not None else ['AUTH', o['password']]
                sock.sendall(resp_command(*args))
                kind, value = reader.reply()
                if kind == '-':
                    raise ProbeFailure('Redis at %s refused AUTH%s: %s'
                                       % (where, ' as %s' % o['user'] if o['user'] else '', value), detail)
            sock.sendall(resp_command('PING'))
            kind, value = reader.reply()
        except ProbeFailure:
            raise
        except socket.timeout:
            raise ProbeFailure('Redis at %s: no reply within %.1fs' % (where, timeout), detail)
        except (OSError, ValueError) as exc:
            raise ProbeFailure('Redis at %s: %s' % (where, exc or type(exc).__name__), detail)
        finally:
            sock.close()
        detail['reply'] = value
        if kind == '-':
            hint = ' (set password)' if value.startswith('NOAUTH') else ''
            raise ProbeFailure('Redis at %s answered PING with an error: %s%s' % (where, value, hint), detail)
        if value != 'PONG':
            raise ProbeFailure('Redis at %s answered PING with %r, expected PONG' % (where, value), detail)
        return detail


# ------------------------------------------------------------------------------ docker_container
DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock'


def docker_inspect_via_socket(container, docker_host, timeout):
    """GET /containers/<name>/json from the engine API (unix socket or tcp://); (status, JSON)."""
    if docker_host.startswith('unix://'):
        url, unix_socket = 'http://localhost', docker_host[len('unix://'):]
    elif docker_host.startswith(('tcp://', 'http://')):
        url, unix_socket = 'http://' + docker_host.split('://', 1)[1].rstrip('/'), None
    else:
        raise ProbeFailure('docker_host %r: only unix:// and tcp:// (plain) are supported without the docker SDK'
                           % docker_host)
    resp = http_request('GET', '%s/containers/%s/json' % (url, quote(container, safe='')), timeout=timeout,
                        unix_socket=unix_socket)
    try:
        return resp.status, resp.json()
    except ValueError:
        return resp.status, {'message': resp.body.decode('utf-8', 'replace')[:200]}


class DockerContainerProbe(Probe):
    TYPE = 'docker_container'
    OPTIONS = {'container': {'required': True}, 'docker_host': {}, 'expect': {'default': 'auto'}}

    def validate(self):
        errors = []
        if self.opts['expect'] not in ('auto', 'healthy', 'running'):
            errors.append("expect: %r is not one of auto, healthy, running" % self.opts['expect'])
        host = self.opts['docker_host']
        if host is not None and not host.startswith(('unix://', 'tcp://', 'http://', 'https://', 'ssh://')):
            errors.append("docker_host: %r must look like unix:///var/run/docker.sock or tcp://host:2375" % host)
        return errors

    def _inspect(self, timeout):
        name = self.opts['container']
        host = self.opts['docker_host']
        docker = optional_library('docker')
        if docker is not None:
            try:
                if host:
                    client = docker.DockerClient(base_url=host, timeout=max(1, int(math.ceil(timeout))))
                else:
                    client = docker.from_env(timeout=max(1, int(math.ceil(timeout))))
                try:
                    return client.api.inspect_container(name), 'docker SDK'
                finally:
                    client.close()
            except docker.errors.NotFound:
                raise ProbeFailure('no such container %r' % name)
            except docker.errors.DockerException as exc:
                raise ProbeFailure('docker (%s): %s' % (host or 'from environment', _one_line(exc)))
            except Exception as exc:  # requests/urllib3 connection errors
                raise ProbeFailure('docker (%s): %s' % (host or 'from environment', _one_line(exc)))
        host = host or os.environ.get('DOCKER_HOST') or DEFAULT_DOCKER_HOST
        try:
            status, data = docker_inspect_via_socket(name, host, timeout)
        except ProbeFailure:
            raise
        except Exception as exc:
            raise ProbeFailure('docker engine at %s: %s' % (host, _one_line(exc)))
        if status == 404:
            raise ProbeFailure('no such container %r' % name)
        if status != 200:
            raise ProbeFailure('docker engine at %s: HTTP %d %s' % (host, status, (data or {}).get('message', '')))
        return data, 'docker socket %s' % host

    def check(self, timeout):
        name = self.opts['container']
        info, via = self._inspect(timeout)
        state = info.get('State') or {}
        health = state.get('Health') or {}
        detail = {'container': name, 'via': via, 'status': state.get('Status'), 'health': health.get('Status'),
                  'image': (info.get('Config') or {}).get('Image'), 'restart_count': info.get('RestartCount')}
        expect = self.opts['expect']
        if expect == 'auto':
            expect = 'healthy' if health.get('Status') else 'running'
        if state.get('Status') != 'running':
            raise ProbeFailure('container %r is %s (exit code %s), expected %s'
                               % (name, state.get('Status'), state.get('ExitCode'), expect), detail)
        if expect == 'healthy':
            if not health.get('Status'):
                raise ProbeFailure('container %r has no healthcheck; use expect: running' % name, detail)
            if health.get('Status') != 'healthy':
                log = health.get('Log') or []
                last = _excerpt(str((log[-1] or {}).get('Output', '')), 200) if log else ''
                detail['failing_streak'] = health.get('FailingStreak')
                raise ProbeFailure('container %r is %s, expected healthy%s'
                                   % (name, health.get('Status'), ' (last check: %s)' % last if last else ''), detail)
        return detail


PROBE_TYPES = dict((cls.TYPE, cls) for cls in (HttpProbe, TcpProbe, PostgresProbe, MilvusProbe, OpenSearchProbe,
                                               KafkaProbe, RedisProbe, DockerContainerProbe))


# ------------------------------------------------------------------------------------ validation
def build_probes(raw_probes, retries=0, delay=1.0):
    """Validate the user's probe dicts and build Probe objects. Raises ProbeError naming every problem."""
    errors = []
    probes = []
    seen = set()
    if not raw_probes:
        raise ProbeError("probes: give at least one probe")
    for index, raw in enumerate(raw_probes):
        given = dict((k, v) for k, v in (raw or {}).items() if v is not None)
        name = given.get('name')
        label = 'probe %r' % name if name else 'probes[%d]' % index
        if not name:
            errors.append("probes[%d]: option 'name' is required (a unique name for each probe)" % index)
        elif name in seen:
            errors.append("probe %r: option 'name' is used by more than one probe; names must be unique" % name)
        seen.add(name)
        ptype = given.get('type')
        if ptype not in PROBE_TYPES:
            errors.append("%s: option 'type' %s; allowed types: %s"
                          % (label, 'is required' if ptype is None else '%r is not supported' % ptype,
                             ', '.join(sorted(PROBE_TYPES))))
            continue
        cls = PROBE_TYPES[ptype]
        label = '%s (type %s)' % (label, ptype)
        allowed = sorted(set(COMMON_OPTIONS) | set(cls.OPTIONS))
        for key in sorted(set(given) - set(allowed)):
            errors.append("%s: option %r is not supported by %s probes; allowed options: %s"
                          % (label, key, ptype, ', '.join(allowed)))
        for key in sorted(k for k, spec in cls.OPTIONS.items() if spec.get('required') and k not in given):
            errors.append("%s: option %r is required; allowed options: %s" % (label, key, ', '.join(allowed)))
        opts = {}
        for key, spec in cls.OPTIONS.items():
            default = spec.get('default')
            opts[key] = given[key] if key in given else (list(default) if isinstance(default, list) else
                                                         dict(default) if isinstance(default, dict) else default)
        p_retries = given.get('retries', retries)
        p_delay = given.get('delay', delay)
        p_timeout = given.get('timeout', DEFAULT_PROBE_TIMEOUT)
        if p_retries < 0:
            errors.append("%s: option 'retries' must be >= 0, got %r" % (label, p_retries))
        if p_delay < 0:
            errors.append("%s: option 'delay' must be >= 0, got %r" % (label, p_delay))
        if p_timeout <= 0:
            errors.append("%s: option 'timeout' must be > 0, got %r" % (label, p_timeout))
        probe = cls(name, opts, p_retries, p_delay, p_timeout)
        if not any(e.startswith(label) for e in errors):
            errors.extend('%s: option %s' % (label, e) for e in probe.validate())
        probes.append(probe)
    if errors:
        raise ProbeError('invalid probes: ' + '; '.join(errors))
    return probes


# ---------------------------------------------------------------------------------------- runner
class ProbeRunner:
    """Runs probes concurrently (one thread each) under one overall timeout."""

    def __init__(self, probes, timeout, clock=time.monotonic):
        self.probes = probes
        self.timeout = timeout
        self.clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def _run_one(self, probe, state, deadline):
        try:
            for attempt in range(1, probe.retries + 2):
                remaining = deadline - self.clock()
                if remaining <= 0 or self._stop.is_set():
                    break
                with self._lock:
                    state['attempts'] = attempt
                start = self.clock()
                try:
                    detail, error, ok = probe.check(min(probe.timeout, remaining)), None, True
                except ProbeFailure as exc:
                    detail, error, ok = exc.detail, str(exc), False
                except Exception as exc:  # a bug or an unexpected library error: report, do not crash the run
                    detail, error, ok = {}, '%s: %s' % (type(exc).__name__, _one_line(exc)), False
                with self._lock:
                    state.update(ok=ok, error=error, detail=detail or {},
                                 latency_ms=round((self.clock() - start) * 1000.0, 1))
                if ok:
                    break
                if attempt <= probe.retries:
                    if deadline - self.clock() <= probe.delay:
                        break  # the next attempt could only start after the overall deadline
                    if probe.delay > 0 and self._stop.wait(probe.delay):
                        break
        finally:
            with self._lock:
                state['done'] = True

    def run(self):
        start = self.clock()
        deadline = start + self.timeout
        states = [{'attempts': 0, 'ok': False, 'error': None, 'detail': {}, 'latency_ms': None, 'done': False}
                  for dummy in self.probes]
        threads = []
        for probe, state in zip(self.probes, states):
            thread = threading.Thread(target=self._run_one, args=(probe, state, deadline),
                                      name='probe-%s' % probe.name)
            thread.daemon = True
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(max(0.0, deadline - self.clock()))
        self._stop.set()
        results = []
        with self._lock:
            for probe, state in zip(self.probes, states):
                result = {'name': probe.name, 'type': probe.TYPE, 'ok': bool(state['ok']) and state['done'],
                          'attempts': state['attempts'], 'latency_ms': state['latency_ms'],
                          'detail': state['detail'], 'error': state['error']}
                if not state['done']:
                    last = ' (last error: %s)' % state['error'] if state['error'] else ''
                    result['ok'] = False
                    result['error'] = ('overall timeout of %gs reached during attempt %d%s'
                                       % (self.timeout, state['attempts'], last))
                elif not state['ok'] and state['error'] is None:
                    result['error'] = 'not run: overall timeout of %gs reached before the first attempt' % self.timeout
                results.append(result)
        return results, round((self.clock() - start) * 1000.0, 1)


def summarize(results):
    failed = [r for r in results if not r['ok']]
    if not failed:
        return None
    return '%d of %d probe(s) failed: %s' % (len(failed), len(results), '; '.join(
        '%s (%s): %s' % (r['name'], r['type'], r['error']) for r in failed))

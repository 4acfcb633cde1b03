# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Kafka through kafka-python for aistack.infra (private: not a public API).

- ``KAFKA_CONNECTION_ARGS`` (with ``KAFKA_REQUIRED_IF`` / ``KAFKA_REQUIRED_BY``) is merged into the argument
  spec of every Kafka module; ``connect_admin`` opens a ``KafkaAdminClient`` from those options and, when the
  cluster cannot be reached, says why (refused, TLS, authentication) instead of kafka-python's bare timeout.
- ``cluster_health`` reads brokers and topic metadata for the ``kafka`` probe of ``service_health``
  (kafka-python never lets a metadata request auto-create a topic).
- ``TopicManager`` does the work of ``kafka_topic``: validate the request offline, read the topic, plan the
  admin calls, have the broker validate them (``validate_only``), then run them unless in check mode.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import logging
import re
import ssl
import threading
import time
import traceback
import uuid

try:
    import kafka.errors as kafka_errors
    from kafka import TopicPartition
    from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType, KafkaAdminClient
    HAS_KAFKA = True
    KAFKA_IMPORT_ERROR = None
except ImportError:
    kafka_errors = TopicPartition = AlterConfigOp = ConfigResource = ConfigResourceType = KafkaAdminClient = None
    HAS_KAFKA = False
    KAFKA_IMPORT_ERROR = traceback.format_exc()

SECURITY_PROTOCOLS = ('PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL')
SASL_MECHANISMS = ('PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512')

KAFKA_CONNECTION_ARGS = dict(
    bootstrap_servers=dict(type='list', elements='str', required=True),
    security_protocol=dict(type='str', choices=list(SECURITY_PROTOCOLS), default='PLAINTEXT'),
    sasl_mechanism=dict(type='str', choices=list(SASL_MECHANISMS), default='SCRAM-SHA-512'),
    sasl_username=dict(type='str'),
    sasl_password=dict(type='str', no_log=True),
    ssl_cafile=dict(type='path'),
    ssl_certfile=dict(type='path'),
    ssl_keyfile=dict(type='path', no_log=False),
    ssl_check_hostname=dict(type='bool', default=True),
    request_timeout=dict(type='int', default=30),
)
KAFKA_REQUIRED_IF = [
    ('security_protocol', 'SASL_SSL', ('sasl_username', 'sasl_password')),
    ('security_protocol', 'SASL_PLAINTEXT', ('sasl_username', 'sasl_password')),
]
KAFKA_REQUIRED_BY = {'ssl_keyfile': ('ssl_certfile',)}

# Kafka's topic name rules (org.apache.kafka.common.internals.Topic).
TOPIC_NAME_RE = re.compile(r'^[a-zA-Z0-9._-]+$')
TOPIC_NAME_MAX = 249

# Topic-level configs of Kafka 4.3 (DescribeConfigs of a topic), used to check config names when the cluster
# has no topic to ask; otherwise the broker's own list is used.
KNOWN_TOPIC_CONFIGS = (
    'cleanup.policy', 'compression.gzip.level', 'compression.lz4.level', 'compression.type',
    'compression.zstd.level', 'delete.retention.ms', 'file.delete.delay.ms', 'flush.messages', 'flush.ms',
    'follower.replication.throttled.replicas', 'index.interval.bytes', 'leader.replication.throttled.replicas',
    'local.retention.bytes', 'local.retention.ms', 'max.compaction.lag.ms', 'max.message.bytes',
    'message.timestamp.after.max.ms', 'message.timestamp.before.max.ms', 'message.timestamp.type',
    'min.cleanable.dirty.ratio', 'min.compaction.lag.ms', 'min.insync.replicas', 'preallocate',
    'remote.log.copy.disable', 'remote.log.delete.on.disable', 'remote.storage.enable', 'retention.bytes',
    'retention.ms', 'segment.bytes', 'segment.index.bytes', 'segment.jitter.ms', 'segment.ms',
    'unclean.leader.election.enable',
)


class KafkaError(Exception):
    """A failure to report with ``fail_json(msg=...)``; ``details`` are extra result keys."""

    def __init__(self, msg, **details):
        Exception.__init__(self, msg)
        self.msg = msg
        self.details = details


# ------------------------------------------------------------------------------------ connection
def split_host_port(value):
    """'host:port' / '[::1]:9092' -> (host, port). Raises ValueError."""
    value = (value or '').strip()
    if value.startswith('['):
        host, dummy, rest = value[1:].partition(']')
        port = rest[1:] if rest.startswith(':') else ''
    else:
        host, dummy, port = value.rpartition(':')
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError('%r is not host:port' % value)
    return host, int(port)


def validate_connection(params):
    """Offline checks of the connection options; a list of messages naming the option."""
    errors = []
    servers = params.get('bootstrap_servers') or []
    if not servers:
        errors.append('bootstrap_servers: give at least one host:port')
    for server in servers:
        try:
            split_host_port(server)
        except ValueError:
            errors.append('bootstrap_servers: %r is not host:port' % server)
    protocol = params.get('security_protocol') or 'PLAINTEXT'
    if protocol not in SECURITY_PROTOCOLS:
        errors.append('security_protocol: %r is not one of %s' % (protocol, ', '.join(SECURITY_PROTOCOLS)))
    elif protocol.startswith('SASL_'):
        if params.get('sasl_mechanism') not in SASL_MECHANISMS:
            errors.append('sasl_mechanism: %r is not one of %s' % (params.get('sasl_mechanism'), ', '.join(SASL_MECHANISMS)))
        if not params.get('sasl_username') or params.get('sasl_password') is None:
            errors.append('sasl_username/sasl_password: security_protocol %s needs both' % protocol)
    timeout = params.get('request_timeout')
    if timeout is not None and timeout <= 0:
        errors.append('request_timeout: must be > 0 seconds, got %r' % timeout)
    if params.get('ssl_keyfile') and not params.get('ssl_certfile'):
        errors.append('ssl_keyfile: needs ssl_certfile')
    return errors


def ssl_context(cafile=None, certfile=None, keyfile=None, check_hostname=True, verify=True):
    """A client TLS context: TLS 1.2+, the CA file (or the system's CAs), optional client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if verify:
        ctx.check_hostname = bool(check_hostname)
        if cafile:
            ctx.load_verify_locations(cafile)
        else:
            ctx.load_default_certs()
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


def client_config(params, client_id='aistack-infra', verify=True):
    """kafka-python client options from the module options (KAFKA_CONNECTION_ARGS names)."""
    timeout_ms = int((params.get('request_timeout') or 30) * 1000)
    protocol = params.get('security_protocol') or 'PLAINTEXT'
    conf = dict(bootstrap_servers=list(params['bootstrap_servers']), client_id=client_id,
                security_protocol=protocol, request_timeout_ms=max(timeout_ms, 1000),
                bootstrap_timeout_ms=max(timeout_ms, 1000))
    if protocol in ('SSL', 'SASL_SSL'):
        try:
            conf['ssl_context'] = ssl_context(params.get('ssl_cafile'), params.get('ssl_certfile'),
                                              params.get('ssl_keyfile'), params.get('ssl_check_hostname', True), verify)
        except (OSError, ssl.SSLError) as exc:
            raise KafkaError('cannot load the TLS files (ssl_cafile, ssl_certfile, ssl_keyfile): %s' % exc)
    if protocol.startswith('SASL_'):
        conf.update(sasl_mechanism=params.get('sasl_mechanism') or 'SCRAM-SHA-512',
                    sasl_plain_username=params.get('sasl_username'), sasl_plain_password=params.get('sasl_password'))
    return conf


if HAS_KAFKA:
    class _AdminClient(KafkaAdminClient):
        """A KafkaAdminClient that stops its network thread when the bootstrap in ``__init__`` fails
        (kafka-python leaves that thread running)."""

        def __init__(self, **conf):
            try:
                super(_AdminClient, self).__init__(**conf)
            except Exception:
                for part in ('_client', '_metrics'):
                    try:
                        getattr(self, part).close()
                    except Exception:
                        pass
                try:
                    self._net.stop()
                except Exception:
                    pass
                raise


class _BootstrapLog(logging.Handler):
    """Collects why kafka-python's bootstrap connections of one client failed, from what its IO thread logs.

    A broker that refuses SASL credentials sometimes closes the TLS connection before its error response is
    read, and kafka-python then only sees 'socket disconnected': a connection lost right after a
    SaslAuthenticate request is reported as the authentication failure it is.
    """

    FATAL = ('SaslAuthenticationFailed', 'AuthenticationFailed', 'authentication failed', 'CERTIFICATE_VERIFY_FAILED',
             'IllegalSaslState', 'UnsupportedSaslMechanism', 'WRONG_VERSION_NUMBER', 'hostname mismatch',
             "doesn't match")

    def __init__(self, thread_name, mechanism):
        logging.Handler.__init__(self, logging.DEBUG)
        self.thread_name = thread_name
        self.mechanism = mechanism
        self.reasons = []
        self.last_request = None

    def _add(self, reason):
        if reason not in self.reasons:
            self.reasons.append(reason)

    def emit(self, record):
        if record.threadName != self.thread_name:
            return
        try:
            text = record.getMessage()
        except Exception:
            return
        request = re.search(r'> Request \d+: (\w+?)Request\(', text)
        if request:
            self.last_request = request.group(1)
            return
        if 'Connection lost' in text and self.last_request == 'SaslAuthenticate' and 'SaslAuthentication' not in text:
            self._add('the broker closed the connection during SASL %s authentication: authentication failed '
                      '(wrong user name or password?)' % self.mechanism)
            return
        match = re.match(r'Bootstrap connection to \S+ failed: (.*?)(?: \(backoff [0-9.]+ secs\))?$', text)
        if match:
            self._add(match.group(1))

    def fatal(self):
        return [r for r in self.reasons if any(f in r for f in self.FATAL)]


_LOG_LOCK = threading.Lock()
_LOG_USERS = [0, {}]  # clients connecting now, and the kafka-python loggers' settings before the first
FIRST_SLICE = 3.0
# kafka-python loggers read while connecting: (name, level needed, propagate). kafka.net.connection is read at
# DEBUG (to see which request a connection was lost after), and its records go to our handler only: at DEBUG
# it logs request bodies, and a SASL PLAIN request carries the password.
_LOG_SETTINGS = (('kafka.net.manager', logging.WARNING, True), ('kafka.net.connection', logging.DEBUG, False))


def _watch(handler):
    with _LOG_LOCK:
        if not _LOG_USERS[0]:
            for name, level, propagate in _LOG_SETTINGS:
                logger = logging.getLogger(name)
                _LOG_USERS[1][name] = (logger.level, logger.propagate)
                if logger.getEffectiveLevel() > level:
                    logger.setLevel(level)
                if not propagate:
                    logger.propagate = False
        for name, dummy, dummy2 in _LOG_SETTINGS:
            logging.getLogger(name).addHandler(handler)
        _LOG_USERS[0] += 1


def _unwatch(handler):
    with _LOG_LOCK:
        for name, dummy, dummy2 in _LOG_SETTINGS:
            logging.getLogger(name).removeHandler(handler)
        _LOG_USERS[0] -= 1
        if not _LOG_USERS[0]:
            for name, (level, propagate) in _LOG_USERS[1].items():
                logger = logging.getLogger(name)
                logger.setLevel(level)
                logger.propagate = propagate


def connect_admin(params, client_id='aistack-infra', verify=True, deadline=None):
    """An open KafkaAdminClient, or KafkaError saying why none of the bootstrap servers could be used.

    kafka-python retries a failed bootstrap until its timeout and then only says 'Unable to bootstrap'. This
    gives a first client 3 seconds (what a handshake with authentication takes on a loaded machine) and stops
    there when it met a failure that retrying cannot fix (authentication, TLS verification); otherwise a second
    client gets the time left. The error reports the reasons kafka-python logged.
    """
    conf = client_config(params, client_id='%s-%s' % (client_id, uuid.uuid4().hex[:8]), verify=verify)
    total = conf['bootstrap_timeout_ms'] / 1000.0
    deadline = deadline or time.monotonic() + total
    handler = _BootstrapLog('kafka-io-%s' % conf['client_id'], conf.get('sasl_mechanism'))
    _watch(handler)
    attempts = 0
    try:
        while True:
            remaining = deadline - time.monotonic()
            conf['bootstrap_timeout_ms'] = int(max(0.5, min(FIRST_SLICE, remaining) if not attempts else remaining) * 1000)
            attempts += 1
            try:
                return _AdminClient(**conf)
            except kafka_errors.KafkaTimeoutError:
                if handler.fatal() or deadline - time.monotonic() <= 0:
                    break
            except kafka_errors.KafkaError as exc:
                handler.reasons.append(_one_line(exc))
                break
    finally:
        _unwatch(handler)
    reasons = handler.fatal() or handler.reasons or ['no answer within %gs' % total]
    raise KafkaError('cannot connect to Kafka at %s (%s): %s'
                     % (', '.join(params['bootstrap_servers']), conf['security_protocol'], '; '.join(reasons[:3])))


def _one_line(exc):
    text = str(exc).strip() or type(exc).__name__
    return ' '.join(text.split())[:500]


def close_quietly(admin):
    if admin is not None:
        try:
            admin.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------------------- health
def cluster_health(admin, topics):
    """Brokers and the state of ``topics`` (never auto-created). Returns (detail, problems)."""
    cluster = admin.describe_cluster()
    brokers = cluster.get('brokers') or []
    detail = dict(cluster_id=cluster.get('cluster_id'), controller_id=cluster.get('controller_id'),
                  brokers=['%d@%s:%d' % (b['broker_id'], b['host'], b['port']) for b in brokers], topics={})
    problems = []
    if not brokers:
        problems.append('the cluster reports no brokers')
    fenced = [b['broker_id'] for b in brokers if b.get('is_fenced')]
    if fenced:
        problems.append('fenced broker(s): %s' % ', '.join(str(b) for b in fenced))
    if topics:
        found = dict((t['name'], t) for t in admin.describe_topics(list(topics)))
        missing = [t for t in topics if t not in found or found[t]['error_code'] == 3]
        if missing:
            problems.append('topic(s) not found: %s' % ', '.join(missing))
        for name in topics:
            item = found.get(name)
            if item is None or item['error_code'] == 3:
                continue
            if item['error_code']:
                problems.append('topic %s: %s' % (name, kafka_errors.for_code(item['error_code']).__name__))
                continue
            parts = item.get('partitions') or []
            detail['topics'][name] = len(parts)
            leaderless = sorted(p['partition_index'] for p in parts if p['leader_id'] < 0)
            if leaderless:
                problems.append('topic %s: partition(s) without leader: %s' % (name, ', '.join(map(str, leaderless))))
            under = sorted(p['partition_index'] for p in parts
                           if p['leader_id'] >= 0 and len(p.get('isr_nodes') or []) < len(p.get('replica_nodes') or []))
            if under:
                problems.append('topic %s: under-replicated partition(s): %s' % (name, ', '.join(map(str, under))))
    return detail, problems


# ---------------------------------------------------------------------------------------- topics
def validate_topic_name(name):
    """None when ``name`` is a valid Kafka topic name, else why not."""
    if not name:
        return 'must not be empty'
    if name in ('.', '..'):
        return "must not be '.' or '..'"
    if len(name) > TOPIC_NAME_MAX:
        return 'is %d characters long; at most %d are allowed' % (len(name), TOPIC_NAME_MAX)
    if not TOPIC_NAME_RE.match(name):
        bad = sorted(set(c for c in name if not re.match(r'[a-zA-Z0-9._-]', c)))
        return 'contains %s; only ASCII letters, digits, ".", "_" and "-" are allowed' % ', '.join(repr(c) for c in bad)
    return None


def config_value(value):
    """A config value as Kafka stores it (a string); lists are comma-separated, booleans lower case."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return ','.join(config_value(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def validate_topic_params(params):
    """Offline checks of kafka_topic's own options: a list of messages naming the option."""
    errors = []
    why = validate_topic_name(params.get('name'))
    if why:
        errors.append('name: %r %s' % (params.get('name'), why))
    partitions = params.get('partitions')
    if partitions is not None and partitions < 1:
        errors.append('partitions: must be >= 1, got %d' % partitions)
    rf = params.get('replication_factor')
    if rf is not None and not 1 <= rf <= 32767:
        errors.append('replication_factor: must be between 1 and 32767, got %d' % rf)
    for key, value in sorted((params.get('configs') or {}).items()):
        if not re.match(r'^[a-z0-9.]+$', str(key)):
            errors.append('configs: %r is not a Kafka config name (lower case words joined by dots)' % key)
        if isinstance(value, dict):
            errors.append('configs.%s: a value must be a string, number, boolean, list or null, not a mapping' % key)
    if params.get('state') == 'absent':
        given = [k for k in ('partitions', 'replication_factor', 'configs') if params.get(k)]
        if given:
            errors.append('state=absent: %s cannot be combined with it' % ', '.join(given))
    return errors


class TopicManager:
    """Plans and runs what ``kafka_topic`` asks for. ``run()`` returns the module result or raises KafkaError."""

    def __init__(self, params, check_mode=False, admin=None):
        self.params = params
        self.check_mode = check_mode
        self.admin = admin
        self.actions = []
        self.done = []  # actions that ran (a failure after some of them still changed the cluster)
        self.name = params['name']
        self.timeout_ms = int((params.get('request_timeout') or 30) * 1000)

    # -- reading
    def describe(self):
        """The topic as it is: None when absent, else {name, partitions, replication_factor, configs,
        assignment: {partition: [replicas]}, all_configs: {key: (value, source)}}."""
        items = self.admin.describe_topics([self.name])
        item = items[0] if items else None
        if item is None or item['error_code'] == 3:
            return None
        if item['error_code']:
            raise KafkaError('cannot describe topic %r: %s' % (self.name, kafka_errors.for_code(item['error_code']).__name__))
        assignment = dict((p['partition_index'], list(p['replica_nodes'])) for p in item['partitions'])
        configs = self._configs(self.name)
        return dict(name=self.name, partitions=len(assignment),
                    replication_factor=max([len(r) for r in assignment.values()] or [0]),
                    assignment=assignment, all_configs=configs,
                    configs=dict((k, v) for k, (v, source) in configs.items() if source == 'DYNAMIC_TOPIC_CONFIG'))

    def _configs(self, topic):
        result = self.admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter='all')
        entries = (result.get('topic') or {}).get(topic) or {}
        return dict((k, (e.get('value'), e.get('config_source'))) for k, e in entries.items())

    def allowed_configs(self, current):
        """Topic config names the broker knows: from the topic itself, another topic, or the built-in list."""
        if current is not None:
            return sorted(current['all_configs'])
        others = [t for t in self.admin.list_topics() if t != self.name]
        if others:
            names = sorted(self._configs(sorted(others)[0]))
            if names:
                return names
        return sorted(KNOWN_TOPIC_CONFIGS)

    # -- planning
    def plan(self, current, brokers):
        """(operations, after) for ``current`` (describe()) and the broker ids; raises KafkaError on refusal."""
        p = self.params
        if p.get('state') == 'absent':
            return ([('delete', None)] if current else []), None
        desired_configs = dict((k, None if v is None else config_value(v)) for k, v in (p.get('configs') or {}).items())
        allowed = self.allowed_configs(current)
        unknown = sorted(k for k in desired_configs if k not in allowed)
        if unknown:
            raise KafkaError('configs: unknown topic config(s) %s; allowed: %s' % (', '.join(unknown), ', '.join(allowed)))
        rf = p.get('replication_factor')
        too_many = rf is not None and rf > len(brokers)
        message = ('replication_factor: %d is more than the %d broker(s) of the cluster (%s)'
                   % (rf or 0, len(brokers), ', '.join(str(b) for b in sorted(brokers))))
        if current is None:
            if too_many:
                raise KafkaError(message)
            configs = dict((k, v) for k, v in sorted(desired_configs.items()) if v is not None)
            after = dict(name=self.name, partitions=p.get('partitions'), replication_factor=rf, configs=configs)
            return [('create', dict(partitions=p.get('partitions'), replication_factor=rf, configs=configs))], after
        ops = []
        after = dict(name=self.name, partitions=current['partitions'], replication_factor=current['replication_factor'],
                     configs=dict(current['configs']))
        partitions = p.get('partitions')
        if partitions is not None and partitions < current['partitions']:
            raise KafkaError(
                'partitions: topic %r has %d partitions; %d would be a decrease, which Kafka cannot do (a partition '
                'holds data and keys are assigned to partitions by their count). Keep %d or more, or create a new '
                'topic and move the data to it' % (self.name, current['partitions'], partitions, current['partitions']),
                differences=[dict(key='partitions', current=current['partitions'], requested=partitions)])
        if rf is not None and rf != current['replication_factor']:
            if not p.get('allow_reassignment'):
                raise KafkaError(
                    'replication_factor: topic %r has replication factor %d, %d requested; changing it moves replicas '
                    'between brokers (a partition reassignment). Set allow_reassignment=true to let this module '
                    'reassign every partition, or run kafka-reassign-partitions.sh --execute by hand'
                    % (self.name, current['replication_factor'], rf),
                    differences=[dict(key='replication_factor', current=current['replication_factor'], requested=rf)])
            if too_many:
                raise KafkaError(message)
            ops.append(('reassign', plan_reassignment(current['assignment'], rf, sorted(brokers))))
            after['replication_factor'] = rf
        if partitions is not None and partitions > current['partitions']:
            ops.append(('add_partitions', partitions))
            after['partitions'] = partitions
        sets, deletes = {}, []
        for key, value in sorted(desired_configs.items()):
            now, source = current['all_configs'].get(key, (None, None))
            if value is None:
                if source == 'DYNAMIC_TOPIC_CONFIG':
                    deletes.append(key)
                    after['configs'].pop(key, None)
            elif value != now or source != 'DYNAMIC_TOPIC_CONFIG':  # set on the topic, not inherited
                sets[key] = value
                after['configs'][key] = value
        if sets or deletes:
            ops.append(('alter_configs', dict(set=sets, delete=deletes)))
        return ops, after

    # -- describing operations in words
    def describe_op(self, op, arg):
        n = self.name
        if op == 'delete':
            return 'delete_topics([%r])' % n
        if op == 'create':
            return ('create_topics(name=%r, num_partitions=%s, replication_factor=%s, configs=%r)'
                    % (n, arg['partitions'] if arg['partitions'] is not None else '(broker default)',
                       arg['replication_factor'] if arg['replication_factor'] is not None else '(broker default)',
                       arg['configs']))
        if op == 'add_partitions':
            return 'create_partitions(%r, total_count=%d)' % (n, arg)
        if op == 'reassign':
            return 'alter_partition_reassignments(%r, %r)' % (n, arg)
        if op == 'alter_configs':
            parts = ['set=%r' % arg['set']] if arg['set'] else []
            if arg['delete']:
                parts.append('delete=%r' % arg['delete'])
            return 'incremental_alter_configs(topic=%r, %s)' % (n, ', '.join(parts))
        raise ValueError(op)

    # -- running
    def _check(self, errors, what):
        for item in errors:
            code = item.get('error_code', 0)
            if code:
                raise KafkaError('%s refused by the broker: %s: %s' % (what, kafka_errors.for_code(code).__name__,
                                                                       item.get('error_message') or ''))

    def _create(self, arg, validate_only):
        spec = {'num_partitions': arg['partitions'] if arg['partitions'] is not None else -1,
                'replication_factor': arg['replication_factor'] if arg['replication_factor'] is not None else -1,
                'configs': arg['configs']}
        res = self.admin.create_topics({self.name: spec}, timeout_ms=self.timeout_ms, validate_only=validate_only,
                                       raise_errors=False)
        self._check(res.get('topics') or [], 'create_topics')
        if not validate_only:
            self.admin.wait_for_topics([self.name], timeout_ms=self.timeout_ms)

    def _add_partitions(self, count, validate_only):
        res = self.admin.create_partitions({self.name: count}, timeout_ms=self.timeout_ms, validate_only=validate_only,
                                           raise_errors=False)
        self._check([dict(error_code=r.error_code, error_message=r.error_message) for r in res.results],
                    'create_partitions')
        if not validate_only:
            self.admin.wait_for_topics([self.name], timeout_ms=self.timeout_ms)

    def _alter_configs(self, arg, validate_only):
        configs = dict(arg['set'])
        configs.update((k, (AlterConfigOp.DELETE, None)) for k in arg['delete'])
        res = self.admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, self.name, configs)],
                                       validate_only=validate_only, raise_on_unknown=False, incremental=True)
        outcome = (res.get('topic') or {}).get(self.name)
        if outcome != 'OK':
            raise KafkaError('incremental_alter_configs refused by the broker: %s' % outcome)

    def _reassign(self, assignment):
        reassignments = dict((TopicPartition(self.name, part), replicas) for part, replicas in assignment.items())
        res = self.admin.alter_partition_reassignments(reassignments, timeout_ms=self.timeout_ms)
        failed = ['%d: %s' % (tp.partition, err.__name__) for tp, err in sorted(res.items()) if err is not None]
        if failed:
            raise KafkaError('alter_partition_reassignments refused by the broker: %s' % '; '.join(failed))
        deadline = time.monotonic() + self.timeout_ms / 1000.0
        while self.admin.list_partition_reassignments({self.name: sorted(assignment)}):
            if time.monotonic() > deadline:
                raise KafkaError('the reassignment of topic %r is still running after %ds; it goes on in the cluster'
                                 % (self.name, self.timeout_ms // 1000))
            time.sleep(0.5)

    def _settled(self, planned):
        """The topic once the broker's metadata shows the planned result (it lags the controller by moments)."""
        deadline = time.monotonic() + self.timeout_ms / 1000.0
        while True:
            final = self.describe()
            seen = public_topic(final) if final else {}
            expected = dict((k, v) for k, v in planned.items() if v is not None)
            if all(seen.get(k) == v for k, v in expected.items()) or time.monotonic() > deadline:
                return seen or planned
            time.sleep(0.2)

    def _delete(self):
        res = self.admin.delete_topics([self.name], timeout_ms=self.timeout_ms, raise_errors=False)
        self._check(res.get('topics') or [], 'delete_topics')
        deadline = time.monotonic() + self.timeout_ms / 1000.0
        while self.name in self.admin.list_topics():
            if time.monotonic() > deadline:
                raise KafkaError('topic %r is still listed %ds after its deletion' % (self.name, self.timeout_ms // 1000))
            time.sleep(0.2)

    def run(self):
        try:
            return self._run()
        except kafka_errors.KafkaError as exc:
            raise KafkaError('Kafka admin request failed%s: %s' % (
                ' after %s' % '; '.join(self.done) if self.done else '', _one_line(exc)))

    def _run(self):
        brokers = [b['broker_id'] for b in (self.admin.describe_cluster().get('brokers') or [])]
        current = self.describe()
        ops, after = self.plan(current, brokers)
        self.actions = [self.describe_op(op, arg) for op, arg in ops]
        # The broker validates every change first (validate_only), so a refused one changes nothing.
        for op, arg in ops:
            if op == 'create':
                self._create(arg, validate_only=True)
            elif op == 'add_partitions':
                self._add_partitions(arg, validate_only=True)
            elif op == 'alter_configs':
                self._alter_configs(arg, validate_only=True)
        if not self.check_mode:
            for (op, arg), action in zip(ops, self.actions):
                if op == 'create':
                    self._create(arg, validate_only=False)
                elif op == 'delete':
                    self._delete()
                elif op == 'reassign':
                    self._reassign(arg)
                elif op == 'add_partitions':
                    self._add_partitions(arg, validate_only=False)
                elif op == 'alter_configs':
                    self._alter_configs(arg, validate_only=False)
                self.done.append(action)
            if ops and after is not None:
                after = self._settled(after)
        before = public_topic(current) if current else {}
        topic = after if after is not None else {}
        return dict(changed=bool(ops), actions=self.actions, topic=topic, diff=dict(before=before, after=topic))


def public_topic(described):
    return dict((k, described[k]) for k in ('name', 'partitions', 'replication_factor', 'configs'))


def plan_reassignment(assignment, rf, brokers):
    """New replica lists for every partition so that each has ``rf`` replicas.

    Growing keeps the current replicas (the leader stays first) and adds the least used brokers (on a tie, the
    next ones after the leader, which spreads the new replicas); shrinking keeps the first ``rf`` replicas (the
    preferred leader among them).
    """
    load = dict((b, 0) for b in brokers)
    for replicas in assignment.values():
        for b in replicas:
            load[b] = load.get(b, 0) + 1
    out = {}
    for part in sorted(assignment):
        replicas = list(assignment[part])
        if len(replicas) > rf:
            for b in replicas[rf:]:
                load[b] -= 1
            replicas = replicas[:rf]
        while len(replicas) < rf:
            # least used first; on a tie, the next broker after the partition's leader in broker order
            first = brokers.index(replicas[0]) if replicas and replicas[0] in brokers else 0
            candidates = sorted((b for b in brokers if b not in replicas),
                                key=lambda b: (load[b], (brokers.index(b) - first) % len(brokers)))
            if not candidates:
                raise KafkaError('replication_factor: %d is more than the %d broker(s) of the cluster' % (rf, len(brokers)))
            replicas.append(candidates[0])
            load[candidates[0]] += 1
        out[part] = replicas
    return out

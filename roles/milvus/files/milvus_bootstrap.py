#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bootstrap a Milvus server for the aistack.infra.milvus role (runs with the role's client venv).

Usage: milvus_bootstrap.py [--check] COMMAND REQUEST

REQUEST is a JSON file, or "-" for standard input (how the role passes it, so that no secret
appears in a command line or an environment). Its keys: uri (default MILVUS_URI or
http://127.0.0.1:19530), token (user:password; default MILVUS_TOKEN), timeout (seconds, 30), and
per command:

  root-password  root_password: make it root's password (changed from Milvus' default "Milvus" the
                 first time; nothing to do when it already works)
  collections    db_name, collections (the role's milvus_collections): create the database, the
                 collections and their partitions. An existing collection must have the same
                 definition (fields, types, dimensions, lengths, primary key, auto_id, dynamic
                 field, and shards / consistency level / description when given): a difference
                 fails and shows it, because Milvus cannot alter a schema and dropping would lose
                 data. Missing partitions are created; partitions are never dropped.

Prints ONE JSON object on stdout: changed, failed, actions, msg, and per command data. --check
computes and prints the actions without running them. Everything is planned and validated before
the first change; a failure changes nothing. Indexes are not made here: the role uses the
aistack.infra.milvus_index module for them.
"""

import argparse
import json
import logging
import os
import sys

try:
    from pymilvus import DataType, MilvusClient
    HAS_PYMILVUS = True
except ImportError:  # reported as JSON below
    HAS_PYMILVUS = False

DEFAULT_ROOT_PASSWORD = 'Milvus'
VECTOR_TYPES = ('FLOAT_VECTOR', 'BINARY_VECTOR')


class BootstrapError(Exception):
    """A failure to report to the user, with optional details."""

    def __init__(self, msg, **details):
        super(BootstrapError, self).__init__(msg)
        self.msg = msg
        self.details = details


def connect(uri, token=None, db_name=None, timeout=30.0):
    kwargs = dict(uri=uri, timeout=timeout)
    if token:
        kwargs['token'] = token
    if db_name:
        kwargs['db_name'] = db_name
    return MilvusClient(**kwargs)


def reason(exc):
    return getattr(exc, 'message', None) or str(exc)


# ---- root password ------------------------------------------------------------------------------
def root_password(uri, timeout, request, check):
    new = request.get('root_password') or ''
    if not new:
        raise BootstrapError('the request has no root_password')
    try:
        connect(uri, 'root:%s' % new, timeout=timeout).list_collections()
        return dict(changed=False, actions=[])
    except Exception as exc:  # wrong password and server down look alike: try the default next
        first = reason(exc)
    try:
        client = connect(uri, 'root:%s' % DEFAULT_ROOT_PASSWORD, timeout=timeout)
        client.list_collections()
    except Exception as exc:
        raise BootstrapError(
            'cannot log in to Milvus at %s as root, neither with milvus_root_password (%s) nor with the default '
            'password (%s): is authorization enabled and the server up, or was the root password changed outside '
            'this role? Set milvus_root_password to the current one.' % (uri, first, reason(exc)))
    actions = ["update_password(user='root')"]
    if not check:
        try:
            client.update_password('root', DEFAULT_ROOT_PASSWORD, new)
        except Exception as exc:
            raise BootstrapError('update_password(root) failed: %s' % reason(exc), actions=[])
    return dict(changed=True, actions=actions)


# ---- collections --------------------------------------------------------------------------------
def desired_field(spec):
    """The comparable definition of a field from the role's variables."""
    ftype = spec['type'].upper()
    field = dict(name=spec['name'], type=ftype, is_primary=bool(spec.get('is_primary', False)))
    if field['is_primary']:
        field['auto_id'] = bool(spec.get('auto_id', False))
    if ftype in VECTOR_TYPES:
        field['dim'] = int(spec['dim'])
    if ftype == 'VARCHAR' or (ftype == 'ARRAY' and str(spec.get('element_type', '')).upper() == 'VARCHAR'):
        field['max_length'] = int(spec.get('max_length', 0))
    if ftype == 'ARRAY':
        field['element_type'] = str(spec['element_type']).upper()
        field['max_capacity'] = int(spec['max_capacity'])
    return field


def current_field(info, collection_auto_id):
    ftype = info['type'].name if hasattr(info['type'], 'name') else str(info['type'])
    params = info.get('params') or {}
    field = dict(name=info['name'], type=ftype, is_primary=bool(info.get('is_primary', False)))
    if field['is_primary']:
        field['auto_id'] = bool(info.get('auto_id', collection_auto_id))
    if 'dim' in params:
        field['dim'] = int(params['dim'])
    if 'max_length' in params:
        field['max_length'] = int(params['max_length'])
    if ftype == 'ARRAY':
        etype = info.get('element_type')
        field['element_type'] = etype.name if hasattr(etype, 'name') else str(etype)
        field['max_capacity'] = int(params.get('max_capacity', 0))
    return field


def differences(spec, info):
    """Differences between a collection spec and describe_collection(), as readable lines."""
    diffs = []
    want = [desired_field(f) for f in spec['fields']]
    have = [current_field(f, info.get('auto_id', False)) for f in info.get('fields', [])]
    want_by_name = dict((f['name'], f) for f in want)
    have_by_name = dict((f['name'], f) for f in have)
    for name in want_by_name:
        if name not in have_by_name:
            diffs.append('field %s: missing on the server' % name)
        elif want_by_name[name] != have_by_name[name]:
            w, h = want_by_name[name], have_by_name[name]
            for key in sorted(set(w) | set(h)):
                if w.get(key) != h.get(key):
                    diffs.append('field %s: %s is %r on the server, %r requested' % (name, key, h.get(key), w.get(key)))
    for name in have_by_name:
        if name not in want_by_name:
            diffs.append('field %s: on the server, not requested' % name)
    if [f['name'] for f in want] != [f['name'] for f in have] and not diffs:
        diffs.append('field order: server has %s, requested %s' % ([f['name'] for f in have], [f['name'] for f in want]))
    checks = [('enable_dynamic_field', bool(spec.get('enable_dynamic_field', False)), bool(info.get('enable_dynamic_field', False)))]
    if spec.get('shards_num') is not None:
        checks.append(('shards_num', int(spec['shards_num']), int(info.get('num_shards', 0))))
    if spec.get('consistency_level'):
        checks.append(('consistency_level', spec['consistency_level'], info.get('consistency_level_name')))
    if spec.get('description'):
        checks.append(('description', spec['description'], info.get('description', '')))
    for key, requested, current in checks:
        if requested != current:
            diffs.append('%s is %r on the server, %r requested' % (key, current, requested))
    return diffs


def build_schema(spec):
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=bool(spec.get('enable_dynamic_field', False)),
                                        description=spec.get('description') or '')
    for f in spec['fields']:
        kwargs = dict(description=f.get('description') or '')
        ftype = f['type'].upper()
        if f.get('is_primary'):
            kwargs['is_primary'] = True
            kwargs['auto_id'] = bool(f.get('auto_id', False))
        if ftype in VECTOR_TYPES:
            kwargs['dim'] = int(f['dim'])
        if f.get('max_length') is not None:
            kwargs['max_length'] = int(f['max_length'])
        if ftype == 'ARRAY':
            kwargs['element_type'] = getattr(DataType, str(f['element_type']).upper())
            kwargs['max_capacity'] = int(f['max_capacity'])
        schema.add_field(f['name'], getattr(DataType, ftype), **kwargs)
    return schema


def collections(uri, token, timeout, spec, check):
    db_name = spec.get('db_name') or 'default'
    wanted = spec.get('collections') or []
    for c in wanted:
        for f in c.get('fields', []):
            if not hasattr(DataType, str(f.get('type', '')).upper()):
                raise BootstrapError('collection %s field %s: unknown type %s' % (c.get('name'), f.get('name'), f.get('type')))

    try:
        root = connect(uri, token, timeout=timeout)
        databases = root.list_databases() if hasattr(root, 'list_databases') else ['default']
    except Exception as exc:
        raise BootstrapError('cannot connect to Milvus at %s: %s' % (uri, reason(exc)))

    # Plan everything first.
    steps, actions, report, problems = [], [], {}, []
    db_exists = db_name in databases
    if not db_exists:
        actions.append('create_database(db_name=%r)' % db_name)
        steps.append(('create_database', db_name))
    client = connect(uri, token, db_name=db_name, timeout=timeout) if db_exists else None
    for c in wanted:
        name = c['name']
        partitions = list(c.get('partitions') or [])
        exists = bool(client) and client.has_collection(name)
        report[name] = dict(existed=exists, partitions_created=[])
        if exists:
            diffs = differences(c, client.describe_collection(name))
            if diffs:
                problems.append('collection %s differs from milvus_collections: %s' % (name, '; '.join(diffs)))
                continue
            have = set(client.list_partitions(name))
        else:
            actions.append('create_collection(collection=%r, fields=%s%s%s)' % (
                name, [f['name'] for f in c['fields']],
                ', shards_num=%d' % int(c['shards_num']) if c.get('shards_num') else '',
                ', consistency_level=%r' % c['consistency_level'] if c.get('consistency_level') else ''))
            steps.append(('create_collection', c))
            have = set(['_default'])
        for part in partitions:
            if part not in have:
                actions.append('create_partition(collection=%r, partition=%r)' % (name, part))
                steps.append(('create_partition', (name, part)))
                report[name]['partitions_created'].append(part)
    if problems:
        raise BootstrapError(
            '; '.join(problems) + '. Milvus cannot alter a collection schema: change milvus_collections back, or '
            'migrate the data to a new collection.', collections=report)

    if not check:
        for kind, arg in steps:
            try:
                if kind == 'create_database':
                    root.create_database(arg)
                    client = connect(uri, token, db_name=db_name, timeout=timeout)
                elif kind == 'create_collection':
                    kwargs = {}
                    if arg.get('shards_num'):
                        kwargs['shards_num'] = int(arg['shards_num'])
                    if arg.get('consistency_level'):
                        kwargs['consistency_level'] = arg['consistency_level']
                    client.create_collection(arg['name'], schema=build_schema(arg), **kwargs)
                elif kind == 'create_partition':
                    client.create_partition(arg[0], arg[1])
            except Exception as exc:
                raise BootstrapError('%s failed: %s' % (kind, reason(exc)), collections=report)
    return dict(changed=bool(actions), actions=actions, db_name=db_name, collections=report)


def read_request(path):
    if path == '-':
        return json.load(sys.stdin)
    with open(path, 'r') as fh:
        return json.load(fh)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--check', action='store_true', help='print the actions without running them')
    parser.add_argument('command', choices=['root-password', 'collections'])
    parser.add_argument('request', help='JSON request file, or - for standard input')
    args = parser.parse_args()

    logging.getLogger('pymilvus').setLevel(logging.CRITICAL)
    result = dict(changed=False, failed=False, actions=[], check=args.check)
    try:
        if not HAS_PYMILVUS:
            raise BootstrapError('pymilvus is not installed in %s' % sys.executable)
        try:
            request = read_request(args.request)
        except (IOError, OSError, ValueError) as exc:
            raise BootstrapError('cannot read the request %s: %s' % (args.request, exc))
        uri = request.get('uri') or os.environ.get('MILVUS_URI') or 'http://127.0.0.1:19530'
        token = request.get('token') or os.environ.get('MILVUS_TOKEN') or None
        timeout = float(request.get('timeout') or 30)
        if args.command == 'root-password':
            result.update(root_password(uri, timeout, request, args.check))
        else:
            result.update(collections(uri, token, timeout, request, args.check))
        result['msg'] = '%s: %s' % (args.command, '; '.join(result['actions']) or 'nothing to do')
    except BootstrapError as exc:
        result.update(exc.details)
        result.update(failed=True, changed=False, msg=exc.msg)
    except Exception as exc:  # anything else still answers in JSON
        result.update(failed=True, changed=False, msg='%s: %s' % (type(exc).__name__, reason(exc)))
    sys.stdout.write(json.dumps(result, sort_keys=True) + '\n')
    return 1 if result['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())

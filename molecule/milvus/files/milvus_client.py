#!/usr/bin/env python3
"""A real Milvus client for the molecule verifier (pymilvus, through the published port).

  auth    the root password works; a wrong one and no credentials are refused
  seed    (delete any rows, then) insert 200 rows (ids 0-199, tenant_a: even ids, tenant_b: odd ids) and flush
  search  load state, index, row count, the nearest neighbours of row 137 in the whole collection
          and in partition tenant_a only (which does not hold row 137), with the exact answers of a
          brute-force L2 search for comparison
Prints one JSON object. Connection from MILVUS_URI and MILVUS_TOKEN (MILVUS_TIMEOUT seconds per call);
collection from MILVUS_COLLECTION.
"""
import json
import logging
import math
import os
import sys

from pymilvus import MilvusClient

URI = os.environ.get('MILVUS_URI', 'http://127.0.0.1:19530')
TOKEN = os.environ.get('MILVUS_TOKEN', '')
COLLECTION = os.environ.get('MILVUS_COLLECTION', 'documents')
DIM = int(os.environ.get('MILVUS_DIM', '16'))
# Per call. After a restart, Strong reads wait until Milvus has caught up with its message stream
# (30-60 s on two cores, longer while other tests share the machine).
TIMEOUT = float(os.environ.get('MILVUS_TIMEOUT', '180'))
ROWS = 200


def vector(i):
    """Deterministic, well-separated vectors: row i sits on its own point of a spiral."""
    return [math.sin(i * 0.37 + k) * (1 + i / 50.0) for k in range(DIM)]


def brute_force(query_id, ids, k):
    """The k nearest ids by squared L2 distance, computed here without Milvus."""
    q = vector(query_id)
    dist = sorted((sum((a - b) ** 2 for a, b in zip(q, vector(i))), i) for i in ids)
    return [i for _, i in dist[:k]]


def client(token=TOKEN):
    return MilvusClient(uri=URI, token=token, timeout=TIMEOUT) if token else MilvusClient(uri=URI, timeout=TIMEOUT)


def auth():
    out = {}
    for label, token in (('root', TOKEN), ('wrong', 'root:not-the-password'), ('none', '')):
        try:
            client(token).list_collections()
            out[label] = 'accepted'
        except Exception as exc:  # pymilvus raises MilvusException for refused logins
            out[label] = 'refused: %s' % getattr(exc, 'message', exc)
    return out


def seed():
    c = client()
    c.delete(COLLECTION, filter='id >= 0')  # a rerun of the verifier starts from the same 200 rows
    for tenant, parity in (('tenant_a', 0), ('tenant_b', 1)):
        rows = [{'id': i, 'tenant': tenant, 'embedding': vector(i)} for i in range(ROWS) if i % 2 == parity]
        c.insert(COLLECTION, rows, partition_name=tenant)
    c.flush(COLLECTION)
    return {'inserted': ROWS}


def search():
    c = client()
    c.load_collection(COLLECTION)  # a no-op when loaded; needed after a restart without autoload
    count = c.query(COLLECTION, filter='', output_fields=['count(*)'], consistency_level='Strong')[0]['count(*)']
    hits = c.search(COLLECTION, data=[vector(137)], limit=5, anns_field='embedding',
                    output_fields=['tenant'], consistency_level='Strong')[0]
    part_hits = c.search(COLLECTION, data=[vector(137)], limit=3, anns_field='embedding',
                         partition_names=['tenant_a'], output_fields=['tenant'], consistency_level='Strong')[0]
    index = c.describe_index(COLLECTION, c.list_indexes(COLLECTION)[0])
    return {
        'count': count,
        'top': [[h['id'], h['distance'], h['entity']['tenant']] for h in hits],
        'tenant_a_top': [[h['id'], h['entity']['tenant']] for h in part_hits],
        'exact_top': brute_force(137, range(ROWS), 5),
        'exact_tenant_a_top': brute_force(137, range(0, ROWS, 2), 3),
        'partitions': sorted(c.list_partitions(COLLECTION)),
        'load_state': str(c.get_load_state(COLLECTION)['state']),
        'index': {k: index.get(k) for k in ('index_type', 'metric_type', 'M', 'efConstruction', 'state')},
    }


def main():
    logging.getLogger('pymilvus').setLevel(logging.CRITICAL)
    result = {'auth': auth, 'seed': seed, 'search': search}[sys.argv[1]]()
    print(json.dumps(result, sort_keys=True))


if __name__ == '__main__':
    main()

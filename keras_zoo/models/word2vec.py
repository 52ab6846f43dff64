"""word2vec: skip-gram with negative sampling (Mikolov et al., arXiv:1301.3781, arXiv:1310.4546).

The model scores one centre word against ``1 + num_negatives`` context words: the
observed context word first, then ``num_negatives`` words drawn from the noise
distribution ``U(w)^(3/4) / Z`` (arXiv:1310.4546 Sec. 2.2). Its output is the logits
``v'_c . v_w`` of shape ``(batch, 1 + num_negatives)``; :func:`sgns_loss` turns them into
the negative-sampling objective (arXiv:1310.4546 Eq. 4, negated)::

    -log sigma(v'_{w_O} . v_{w_I}) - sum_{i=1..k} log sigma(-v'_{w_i} . v_{w_I})

Pairs, sub-sampling and negatives come from the data pipeline
(keras_zoo/data/skipgrams.py); training is the ``word2vec`` task
(training/tasks_word2vec.py). The word vectors are the input ("target") embedding
table, :func:`embedding_table`; :func:`nearest_neighbours` queries it by cosine
similarity and :func:`export_embeddings` writes it in the TensorBoard projector format.

Defaults: 300-dimensional vectors and k = 5 negatives are the paper's NEG-5 model
(arXiv:1310.4546 Table 1; Sec. 4.1: "vector dimensionality 300 and context size 5",
the window of the data pipeline); the paper finds k = 5-20 useful for small data sets, 2-5
for large ones (Sec. 2.2). Departure: the output ("context") table is initialised like
the input table, uniform in ``[-0.5/d, 0.5/d]``, rather than with zeros as the
reference C tool does, so that a gradient reaches both tables from the first step.
"""
import os

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.registry import InputSpec, register_family


@serializable
class SkipGramScores(keras.layers.Layer):
    """Dot products of each centre vector ``(B, 1, d)`` with its context vectors ``(B, 1 + k, d)``."""

    def call(self, inputs):
        target, contexts = inputs
        return tf.einsum("bd,bkd->bk", tf.squeeze(target, axis=1), contexts)

    def compute_output_shape(self, input_shape):
        return (input_shape[1][0], input_shape[1][1])


def sgns_loss(labels, logits):
    """Per-example negative-sampling loss: sigmoid cross-entropy summed over the 1 + k contexts.

    ``labels`` are 1 for the observed context word and 0 for the noise words.
    """
    labels = tf.cast(labels, logits.dtype)
    return tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), axis=-1)


def Word2Vec(vocab_size, embedding_dim=300, num_negatives=5, name="word2vec_sgns"):
    """Skip-gram with negative sampling (arXiv:1310.4546).

    Args:
        vocab_size: number of word ids (ids are in ``[0, vocab_size)``).
        embedding_dim: word-vector size (300 in arXiv:1310.4546 Table 1).
        num_negatives: noise words per observed pair, k (5 for NEG-5).
        name: model name; layers are ``name + "_target_embedding"``,
            ``name + "_context_embedding"`` and ``name + "_scores"``.

    Returns:
        A keras.Model ``[target (B, 1) int32, contexts (B, 1 + k) int32] -> logits (B, 1 + k)``.
    """
    for arg, value in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim),
                       ("num_negatives", num_negatives)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
    scale = 0.5 / embedding_dim
    target = keras.Input(shape=(1,), dtype="int32", name=f"{name}_target")
    contexts = keras.Input(shape=(1 + num_negatives,), dtype="int32", name=f"{name}_contexts")
    target_vectors = keras.layers.Embedding(
        vocab_size, embedding_dim, embeddings_initializer=keras.initializers.RandomUniform(-scale, scale),
        name=f"{name}_target_embedding")(target)
    context_vectors = keras.layers.Embedding(
        vocab_size, embedding_dim, embeddings_initializer=keras.initializers.RandomUniform(-scale, scale),
        name=f"{name}_context_embedding")(contexts)
    logits = SkipGramScores(name=f"{name}_scores")([target_vectors, context_vectors])
    return keras.Model([target, contexts], logits, name=name)


def embedding_table(model):
    """The word vectors of a :func:`Word2Vec` model, ``(vocab_size, embedding_dim)`` NumPy array."""
    layers = [layer for layer in model.layers if layer.name.endswith("_target_embedding")]
    if len(layers) != 1:
        raise ValueError(f"Expected one layer named '*_target_embedding' in a word2vec model. "
                         f"Received: model {model.name!r} with layers {[l.name for l in model.layers]}")
    return np.asarray(layers[0].get_weights()[0])


def nearest_neighbours(embeddings, query_ids, k=5, exclude=(0,)):
    """The ``k`` ids most cosine-similar to each query id (the query itself excluded).

    Args:
        embeddings: ``(vocab_size, d)`` word vectors.
        query_ids: ids to query.
        k: neighbours per query.
        exclude: ids never returned (the padding id by default).

    Returns:
        ``(ids, similarities)``, each ``(len(query_ids), k)``, most similar first.
    """
    embeddings = np.asarray(embeddings, np.float64)
    query_ids = np.asarray(query_ids, np.int64).reshape(-1)
    if k < 1 or k >= len(embeddings):
        raise ValueError(f"`k` must be in [1, {len(embeddings) - 1}]. Received: k={k!r}")
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    unit = embeddings / np.maximum(norms, 1e-12)
    similarity = unit[query_ids] @ unit.T
    similarity[np.arange(len(query_ids)), query_ids] = -np.inf
    similarity[:, list(exclude)] = -np.inf
    ids = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return ids, np.take_along_axis(similarity, ids, axis=1)


def export_embeddings(embeddings, vocab, directory):
    """Writes ``vectors.tsv`` + ``metadata.tsv`` (TensorBoard projector) and ``embeddings.npy``.

    Row ``i`` of both TSV files is word id ``i``; the empty padding token is written as
    ``[PAD]`` so that the projector keeps every row. Returns the three paths.
    """
    embeddings = np.asarray(embeddings)
    if len(vocab) != len(embeddings):
        raise ValueError(f"`vocab` must have one entry per embedding row ({len(embeddings)}). "
                         f"Received: {len(vocab)} entries")
    os.makedirs(directory, exist_ok=True)
    paths = {name: os.path.join(directory, name) for name in ("vectors.tsv", "metadata.tsv", "embeddings.npy")}
    np.savetxt(paths["vectors.tsv"], embeddings, delimiter="\t", fmt="%.6g")
    with open(paths["metadata.tsv"], "w", encoding="utf-8") as f:
        f.writelines(f"{token or '[PAD]'}\n" for token in vocab)
    np.save(paths["embeddings.npy"], embeddings)
    return paths


def _inputs(config):
    vocab_size = config["vocab_size"]
    return [InputSpec((1,), "int32", maxval=vocab_size),
            InputSpec((1 + config.get("num_negatives", 5),), "int32", maxval=vocab_size)]


VARIANTS = {
    "word2vec_sgns": dict(config=dict(vocab_size=5000, embedding_dim=300, num_negatives=5),
                          tiny=dict(vocab_size=50, embedding_dim=8, num_negatives=2)),
}

register_family(Word2Vec, VARIANTS, task="word2vec", paper="1310.4546", input_spec=_inputs,
                default_dataset="docstrings_skipgrams", export={"tflite": True, "edgetpu": False})

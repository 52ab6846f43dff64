"""Training task ``word2vec``: skip-gram with negative sampling (arXiv:1310.4546).

The loss is :func:`keras_zoo.models.word2vec.sgns_loss` (per pair, summed over the
observed context and its k noise words, in nats), averaged over the batch by Keras.
``after_training`` exports the word vectors in the TensorBoard projector format
(``embeddings/vectors.tsv`` + ``embeddings/metadata.tsv``, and ``embeddings.npy``)
and writes the cosine nearest neighbours of a few query words to ``neighbours.txt``.
"""
import os

import numpy as np

from keras_zoo.models.word2vec import embedding_table, export_embeddings, nearest_neighbours, sgns_loss
from training.tasks import Task, register_task

#: Words whose neighbours are reported when they are in the vocabulary (chosen for the docstrings corpus).
QUERY_WORDS = ("file", "directory", "thread", "socket", "string", "integer", "error", "message", "list", "test")


@register_task("word2vec")
class Word2VecTask(Task):
    """Negative-sampling loss on ``[target, contexts] -> logits`` skip-gram models."""

    OPTIONS = {"word2vec_neighbours": (5, "Nearest neighbours reported per query word after training.")}

    def loss(self, config):
        return sgns_loss

    def after_training(self, model, bundle, write_dir, config):
        embeddings = embedding_table(model)
        paths = export_embeddings(embeddings, bundle.vocab, os.path.join(write_dir, "embeddings"))
        index = {token: i for i, token in enumerate(bundle.vocab)}
        queries = [w for w in QUERY_WORDS if w in index]
        if not queries:  # another corpus: query its most frequent words instead (ids 2.. by frequency)
            queries = list(bundle.vocab[2:2 + len(QUERY_WORDS)])
        ids, similarities = nearest_neighbours(embeddings, [index[w] for w in queries],
                                               k=self.options["word2vec_neighbours"], exclude=(0, 1))
        neighbours = {w: [bundle.vocab[j] for j in row] for w, row in zip(queries, ids)}
        text_path = os.path.join(write_dir, "neighbours.txt")
        with open(text_path, "w", encoding="utf-8") as f:
            for w, row, sims in zip(queries, ids, similarities):
                f.write(f"{w}: " + ", ".join(f"{bundle.vocab[j]} ({s:.3f})" for j, s in zip(row, sims)) + "\n")
        return {"neighbours": neighbours, "neighbours_file": text_path,
                "embedding_files": paths, "embedding_norm_mean": float(np.linalg.norm(embeddings, axis=1).mean())}

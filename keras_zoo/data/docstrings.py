"""English prose from the docstrings of the Python standard library (embedded, offline).

The corpus is read with ``ast`` (no module is imported) from a fixed, sorted list
of pure-Python stdlib modules, grouped by topic. Docstrings are deduplicated
(first occurrence in group/module/file order wins), and each docstring is one
document: documents go to train/validation/test by a CRC32 hash of their text
(80/10/10), so the split is the same on every machine with the same Python 3.11.

- ``docstrings_char`` / ``docstrings_word``: language modelling on the whole corpus.
- ``docstrings_topic``: classify a prose paragraph by the module group it comes from.
"""
import ast
import collections
import hashlib
import importlib.util
import json
import os
import re
import sys

import numpy as np
import tensorflow as tf

from keras_zoo.data._base import (DatasetBundle, batch_splits, cache_dir, register_dataset, require_task,
                                  sequence_length, split_of)
from keras_zoo.data.text import (adapted_vectorizer, language_model_bundle, normalize_whitespace, padded_ids,
                                 token_stream, vocabulary)

#: Topic -> stdlib modules (packages include all their .py files). These are the
#: docstrings_topic labels, in this order.
GROUPS = {
    "text_processing": ("codecs", "difflib", "gettext", "locale", "re", "shlex", "string", "textwrap"),
    "numeric": ("_pydecimal", "fractions", "numbers", "random", "statistics"),
    "files_and_archives": ("filecmp", "fileinput", "glob", "gzip", "lzma", "pathlib", "shutil", "tarfile",
                           "tempfile", "zipfile"),
    "concurrency": ("asyncio", "concurrent", "multiprocessing", "queue", "sched", "subprocess", "threading"),
    "internet": ("email", "ftplib", "http", "imaplib", "ipaddress", "mailbox", "smtplib", "socketserver",
                 "urllib"),
    "data_formats": ("base64", "configparser", "csv", "html", "json", "plistlib", "tomllib", "xml"),
    "development_tools": ("bdb", "doctest", "inspect", "pdb", "pstats", "timeit", "trace", "traceback",
                          "unittest"),
}
_CORPUS_VERSION = 1
#: Caps the corpus (characters of docstring text) so that loading takes a few seconds.
MAX_CHARS = 1_500_000
_MIN_PARAGRAPH_WORDS = 8


def _module_files(module):
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return []
    if not spec.submodule_search_locations:
        return [spec.origin]
    files = []
    for root, dirs, names in os.walk(spec.submodule_search_locations[0]):
        dirs[:] = sorted(d for d in dirs if d not in ("test", "tests", "__pycache__"))
        files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".py")]
    return files


def _docstrings(path):
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc and len(doc.split()) >= 3:
                yield doc


def collect_corpus():
    """``[(group, module, docstring), ...]``: deduplicated, capped at MAX_CHARS."""
    seen, documents, total = set(), [], 0
    for group, modules in GROUPS.items():
        for module in modules:
            for path in _module_files(module):
                for doc in _docstrings(path):
                    key = normalize_whitespace(doc)
                    if key in seen:
                        continue
                    seen.add(key)
                    documents.append((group, module, doc))
                    total += len(doc)
    # Round-robin over groups when capping, so that every group keeps its share.
    by_group = collections.defaultdict(list)
    for document in documents:
        by_group[document[0]].append(document)
    capped, total, queues = [], 0, [list(reversed(v)) for v in by_group.values()]
    while total < MAX_CHARS and any(queues):
        for queue in queues:
            if queue and total < MAX_CHARS:
                capped.append(queue.pop())
                total += len(capped[-1][2])
    order = {doc: i for i, doc in enumerate(documents)}
    return sorted(capped, key=order.__getitem__)


def load_corpus(data_dir=None):
    """The corpus, cached as JSON under ``data_dir`` (default ``~/.cache/keras_zoo``)."""
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    path = os.path.join(cache_dir(data_dir), f"docstrings-{version}-v{_CORPUS_VERSION}.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return [tuple(d) for d in json.load(f)]
    documents = collect_corpus()
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(documents, f)
    os.replace(tmp, path)
    return documents


def _digest(documents):
    return hashlib.sha256(json.dumps(documents).encode("utf-8")).hexdigest()[:16]


def _split_documents(documents):
    splits = {"train": [], "validation": [], "test": []}
    for document in documents:
        splits[split_of(document[2])].append(document)
    return splits


def _load_lm(level, name, task, input_specs, batch_size, seed, data_dir):
    require_task(name, task, ("language_model",))
    seq_len = sequence_length(name, input_specs)
    documents = load_corpus(data_dir)
    texts = {split: [normalize_whitespace(d[2]) + " " for d in docs]
             for split, docs in _split_documents(documents).items()}
    vectorizer = adapted_vectorizer(level, texts["train"])
    streams = {split: token_stream(vectorizer, t) for split, t in texts.items()}
    info = {"level": level, "documents": {s: len(t) for s, t in texts.items()}, "corpus_sha256": _digest(documents)}
    return language_model_bundle(name, streams, vocabulary(vectorizer), seq_len, batch_size, seed, info)


@register_dataset("docstrings_char")
def load_docstrings_char(_, *, task, input_specs, batch_size, seed, data_dir):
    """Character-level language modelling on stdlib docstrings (~1.5M characters)."""
    return _load_lm("char", "docstrings_char", task, input_specs, batch_size, seed, data_dir)


@register_dataset("docstrings_word")
def load_docstrings_word(_, *, task, input_specs, batch_size, seed, data_dir):
    """Word-level language modelling on stdlib docstrings (5,000-entry vocabulary with OOV)."""
    return _load_lm("word", "docstrings_word", task, input_specs, batch_size, seed, data_dir)


def _is_prose(paragraph):
    words = paragraph.split()
    if len(words) < _MIN_PARAGRAPH_WORDS or paragraph.lstrip().startswith(">>>"):
        return False
    return sum(w.isalpha() for w in words) >= 0.6 * len(words)


def topic_paragraphs(documents):
    """``{split: [(paragraph, group index), ...]}``; paragraphs share their docstring's split."""
    labels = list(GROUPS)
    splits = {"train": [], "validation": [], "test": []}
    seen = set()
    for group, _, doc in documents:
        for paragraph in re.split(r"\n\s*\n", doc):
            paragraph = normalize_whitespace(paragraph)
            if paragraph in seen or not _is_prose(paragraph):
                continue
            seen.add(paragraph)
            splits[split_of(doc)].append((paragraph, labels.index(group)))
    return splits


@register_dataset("docstrings_topic")
def load_docstrings_topic(_, *, task, input_specs, batch_size, seed, data_dir):
    """Which of the GROUPS does a docstring paragraph come from (7 classes, word ids, padded/cut)."""
    require_task("docstrings_topic", task, ("sequence_classification",))
    seq_len = sequence_length("docstrings_topic", input_specs)
    documents = load_corpus(data_dir)
    paragraphs = topic_paragraphs(documents)
    vectorizer = adapted_vectorizer("word", [p for p, _ in paragraphs["train"]], output_sequence_length=seq_len)
    arrays = {split: (padded_ids(vectorizer, [p for p, _ in items]), np.array([g for _, g in items], np.int32))
              for split, items in paragraphs.items()}
    splits = {split: tf.data.Dataset.from_tensor_slices(a) for split, a in arrays.items()}
    vocab = vocabulary(vectorizer)
    test_labels = arrays["test"][1]
    info = {
        "seq_len": seq_len,
        "vocab_size": len(vocab),
        "sizes": {split: len(a[1]) for split, a in arrays.items()},
        "class_counts_train": np.bincount(arrays["train"][1], minlength=len(GROUPS)).tolist(),
        "majority_baseline_accuracy": float(np.bincount(test_labels).max() / len(test_labels)),
        "corpus_sha256": _digest(documents),
    }
    return DatasetBundle(**batch_splits("docstrings_topic", splits, batch_size, seed),
                         model_overrides={"vocab_size": len(vocab), "classes": len(GROUPS)},
                         vocab=vocab, labels=list(GROUPS), info=info)

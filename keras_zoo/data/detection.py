"""Object-detection datasets: digit canvases, tfds VOC / COCO, and a folder of Pascal VOC XML files.

Every loader yields batches ``(images [B, H, W, C] float in [0, 1], {"boxes": [B, G, 4],
"classes": [B, G]})``: boxes are normalized corners ``(ymin, xmin, ymax, xmax)``,
classes int32 ids from 0 with ``-1`` marking the padding rows of images with fewer
than G objects. Images are resized to the model's input (boxes are normalized, so
they need no change).

- ``digit_canvases_det``: ``keras_zoo.data.canvases.make_canvases`` (1..3 digits per
  64x64 canvas; held-out canvases hold held-out digits).
- ``tfds_det:voc/2007``, ``tfds_det:coco/2017``: TensorFlow Datasets detection sets
  (VOC "difficult" and COCO "crowd" objects are dropped, at most ``MAX_BOXES`` per image).
- ``vocxml:PATH``: a folder in Pascal VOC layout (``Annotations/*.xml`` with images in
  ``JPEGImages/``) or XML files next to their images; split by file name.
"""
import glob
import os
import xml.etree.ElementTree as ElementTree

import numpy as np
import tensorflow as tf

from keras_zoo.data._base import (SPLIT_SEED, SPLITS, DatasetBundle, adapt_images, batch_splits, image_shape,
                                  register_dataset, require_task, split_of)

#: Canvases per split of ``digit_canvases_det``.
CANVAS_SPLIT_SIZES = {"train": 4000, "validation": 400, "test": 400}
CANVAS_SIZE = 64
CANVAS_MAX_DIGITS = 3
#: Objects kept per image for tfds and VOC XML data (COCO's maxDets).
MAX_BOXES = 100


def _targets(boxes, classes):
    return {"boxes": tf.cast(boxes, tf.float32), "classes": tf.cast(classes, tf.int32)}


@register_dataset("digit_canvases_det")
def load_digit_canvases_det(_, *, task, input_specs, batch_size, seed, data_dir):
    """Digit canvases for detection: 4,000 / 400 / 400 canvases, 10 classes, fixed splits."""
    from keras_zoo.data.canvases import make_canvases

    require_task("digit_canvases_det", task, ("detection",))
    shape = image_shape("digit_canvases_det", input_specs)
    splits, counts = {}, {}
    for split in SPLITS:
        canvases = make_canvases(CANVAS_SPLIT_SIZES[split], split, canvas_size=CANVAS_SIZE,
                                 max_digits=CANVAS_MAX_DIGITS, seed=SPLIT_SEED)
        counts[split] = int(canvases["num_boxes"].sum())
        splits[split] = tf.data.Dataset.from_tensor_slices(
            (canvases["images"], _targets(canvases["boxes"], canvases["classes"])))
    batched = batch_splits("digit_canvases_det", splits, batch_size, seed,
                           map_fn=lambda x, y: (adapt_images(x, shape, 1.0), y))
    return DatasetBundle(
        **batched, model_overrides={"classes": 10}, labels=[str(d) for d in range(10)],
        info={"sizes": dict(CANVAS_SPLIT_SIZES), "objects": counts, "canvas_size": CANVAS_SIZE,
              "max_boxes": CANVAS_MAX_DIGITS})


# --- TensorFlow Datasets ---------------------------------------------------------------------

def _pad_objects(boxes, classes, max_boxes):
    boxes, classes = boxes[:max_boxes], tf.cast(classes[:max_boxes], tf.int32)
    pad = max_boxes - tf.shape(classes)[0]
    boxes = tf.ensure_shape(tf.pad(tf.cast(boxes, tf.float32), [[0, pad], [0, 0]]), (max_boxes, 4))
    classes = tf.ensure_shape(tf.pad(classes, [[0, pad]], constant_values=-1), (max_boxes,))
    return _targets(boxes, classes)


def _tfds_splits(name, info):
    names = set(info.splits) or {"train", "validation", "test"}
    if name.startswith("coco"):
        # COCO's test split has no annotations: its validation set is halved instead.
        return {"train": "train", "validation": "validation[:50%]", "test": "validation[50%:]"}
    if {"train", "validation", "test"} <= names:
        return {"train": "train", "validation": "validation", "test": "test"}
    if "train" in names and "validation" in names:
        return {"train": "train[:90%]", "validation": "train[90%:]", "test": "validation"}
    raise ValueError(f"tfds_det:{name} needs 'train' and 'validation' splits. Received: splits {sorted(names)}")


@register_dataset("tfds_det", takes_argument=True)
def load_tfds_detection(name, *, task, input_specs, batch_size, seed, data_dir):
    """A tfds detection set with ``objects/bbox`` (normalized corners) and ``objects/label``."""
    import tensorflow_datasets as tfds

    require_task(f"tfds_det:{name}", task, ("detection",))
    shape = image_shape(f"tfds_det:{name}", input_specs)
    info = tfds.builder(name, data_dir=data_dir).info
    objects = info.features["objects"] if "objects" in info.features.keys() else None
    objects = getattr(objects, "feature", objects)  # a Sequence of per-object features
    if objects is None or not {"bbox", "label"} <= set(objects.keys()):
        raise ValueError(f"tfds_det:{name} has no 'objects' feature with 'bbox' and 'label' (a detection set "
                         f"such as voc/2007 or coco/2017). Received: features {list(info.features)}")
    labels = list(objects["label"].names)
    ignore_flags = [flag for flag in ("is_crowd", "is_difficult") if flag in objects.keys()]

    def example(features):
        fields = {key: features["objects"][key] for key in ("bbox", "label", *ignore_flags)}
        # Real records give every object field one entry per object; tfds' mock data does not.
        count = tf.reduce_min([tf.shape(v)[0] for v in fields.values()])
        fields = {key: value[:count] for key, value in fields.items()}
        keep = tf.ones_like(fields["label"], tf.bool)
        for flag in ignore_flags:
            keep = tf.logical_and(keep, tf.logical_not(tf.cast(fields[flag], tf.bool)))
        image = adapt_images(features["image"][None], shape, 255.0)[0]
        return image, _pad_objects(tf.boolean_mask(fields["bbox"], keep), tf.boolean_mask(fields["label"], keep),
                                   MAX_BOXES)

    split_names = _tfds_splits(name, info)
    splits = {split: tfds.load(name, split=spec, data_dir=data_dir, shuffle_files=False,
                               read_config=tfds.ReadConfig(shuffle_seed=seed)).map(example)
              for split, spec in split_names.items()}
    return DatasetBundle(**batch_splits(f"tfds_det:{name}", splits, batch_size, seed),
                         model_overrides={"classes": len(labels)}, labels=labels,
                         info={"tfds_name": name, "splits": split_names, "max_boxes": MAX_BOXES,
                               "sizes": {s: int(ds.cardinality()) for s, ds in splits.items()}})


# --- Pascal VOC XML folder -------------------------------------------------------------------

def _xml_files(path):
    files = sorted(glob.glob(os.path.join(path, "Annotations", "*.xml"))) or sorted(
        glob.glob(os.path.join(path, "*.xml")))
    return files


def _check_vocxml(path):
    if not os.path.isdir(path):
        raise ValueError(f"vocxml:PATH needs an existing folder of Pascal VOC XML annotations. "
                         f"Received: vocxml:{path}")
    if not _xml_files(path):
        raise ValueError(f"vocxml:{path} holds no .xml files (looked in {path}/Annotations and {path}); write one "
                         f"Pascal VOC annotation per image. Received: vocxml:{path}")


def _image_path(root, xml_file, filename):
    stem = os.path.splitext(os.path.basename(xml_file))[0]
    candidates = [os.path.join(root, "JPEGImages", filename), os.path.join(os.path.dirname(xml_file), filename)]
    candidates += [os.path.join(d, stem + ext) for d in (os.path.join(root, "JPEGImages"), os.path.dirname(xml_file))
                   for ext in (".jpg", ".jpeg", ".png")]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise ValueError(f"{xml_file}: no image {filename!r} found in {root}/JPEGImages or next to the XML file. "
                     f"Received: filename={filename!r}")


def parse_voc_xml(xml_file):
    """``(filename, width, height, [(name, ymin, xmin, ymax, xmax, difficult)])`` of one VOC XML file.

    Coordinates are the file's pixels; normalized later as ``x / width`` (the OD API's
    ``create_pascal_tf_record`` convention).
    """
    root = ElementTree.parse(xml_file).getroot()
    size = root.find("size")
    if size is None:
        raise ValueError(f"{xml_file}: no <size> element with <width> and <height>.")
    width, height = float(size.findtext("width")), float(size.findtext("height"))
    if not width > 0 or not height > 0:
        raise ValueError(f"{xml_file}: <size> must give a positive width and height. Received: {width}x{height}")
    objects = []
    for obj in root.findall("object"):
        box = obj.find("bndbox")
        coords = [float(box.findtext(k)) for k in ("ymin", "xmin", "ymax", "xmax")]
        objects.append((obj.findtext("name").strip(), *coords, int(obj.findtext("difficult") or 0)))
    return root.findtext("filename") or "", width, height, objects


@register_dataset("vocxml", check=_check_vocxml, takes_argument=True)
def load_voc_xml(path, *, task, input_specs, batch_size, seed, data_dir):
    """A folder of Pascal VOC XML annotations; classes from ``labels.txt`` or the sorted object names.

    Difficult objects are dropped; images are split 80/10/10 by file name (CRC32).
    """
    require_task(f"vocxml:{path}", task, ("detection",))
    shape = image_shape(f"vocxml:{path}", input_specs)
    records = [(xml_file, *parse_voc_xml(xml_file)) for xml_file in _xml_files(path)]
    labels_file = os.path.join(path, "labels.txt")
    if os.path.exists(labels_file):
        with open(labels_file, encoding="utf-8") as f:
            labels = [line.strip() for line in f if line.strip()]
    else:
        labels = sorted({obj[0] for record in records for obj in record[4]})
    index = {name: i for i, name in enumerate(labels)}
    columns = {split: ([], [], []) for split in SPLITS}
    for xml_file, filename, width, height, objects in records:
        kept = [obj for obj in objects if not obj[5]][:MAX_BOXES]
        unknown = sorted({obj[0] for obj in kept} - set(index))
        if unknown:
            raise ValueError(f"{xml_file}: object names {unknown} are not in {labels_file}; add them. "
                             f"Received: labels {labels}")
        boxes = np.zeros((MAX_BOXES, 4), "float32")
        classes = np.full((MAX_BOXES,), -1, "int32")
        for k, (name, ymin, xmin, ymax, xmax, _) in enumerate(kept):
            boxes[k] = (ymin / height, xmin / width, ymax / height, xmax / width)
            classes[k] = index[name]
        image_file = _image_path(path, xml_file, filename)
        paths, box_list, class_list = columns[split_of(os.path.basename(image_file))]
        paths.append(image_file)
        box_list.append(np.clip(boxes, 0.0, 1.0))
        class_list.append(classes)

    def load(image_file, targets):
        image = tf.io.decode_image(tf.io.read_file(image_file), channels=3, expand_animations=False)
        return adapt_images(image[None], shape, 255.0)[0], targets

    splits = {}
    for split, (paths, boxes, classes) in columns.items():
        targets = _targets(np.stack(boxes) if boxes else np.zeros((0, MAX_BOXES, 4), "float32"),
                           np.stack(classes) if classes else np.zeros((0, MAX_BOXES), "int32"))
        splits[split] = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), targets)).map(load)
    return DatasetBundle(**batch_splits(f"vocxml:{path}", splits, batch_size, seed),
                         model_overrides={"classes": len(labels)}, labels=labels,
                         info={"sizes": {s: len(c[0]) for s, c in columns.items()}, "max_boxes": MAX_BOXES})

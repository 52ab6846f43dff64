"""Object-detection metrics in NumPy: box IoU, Pascal VOC mAP and COCO mAP@[.5:.95].

Boxes are normalized (or pixel) corners ``(ymin, xmin, ymax, xmax)``; areas are
``(ymax - ymin) (xmax - xmin)`` without the VOC devkit's +1 pixel convention.
Every function takes per-image lists:

- ``gt_boxes[i]``: ``[n_i, 4]``, ``gt_classes[i]``: ``[n_i]`` int;
- ``det_boxes[i]``: ``[k_i, 4]``, ``det_scores[i]``: ``[k_i]``, ``det_classes[i]``: ``[k_i]``.

Mean AP averages over the classes that have ground truth.
"""
import numpy as np

#: COCO's IoU thresholds 0.50:0.05:0.95 and its 101 recall points.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
COCO_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def box_iou(boxes_a, boxes_b):
    """IoU matrix ``[N, M]`` of corner boxes ``[N, 4]`` and ``[M, 4]``."""
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)[None]
    height = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    width = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    intersection = height * width
    union = ((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
             - intersection)
    return np.where(union > 0, intersection / np.where(union > 0, union, 1.0), 0.0)


def _classes_with_ground_truth(gt_classes):
    classes = set()
    for c in gt_classes:
        classes.update(np.asarray(c).ravel().tolist())
    return sorted(int(c) for c in classes)


def voc_average_precision(recall, precision):
    """VOC 2010+ AP: area under the precision envelope (all recall points).

    The envelope is ``p(r) = max_{r' >= r} p(r')``; AP sums ``(r_i - r_{i-1}) p(r_i)``
    where recall changes (the devkit's ``VOCap``).
    """
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def voc_map(gt_boxes, gt_classes, det_boxes, det_scores, det_classes, iou_threshold=0.5):
    """Pascal VOC mAP (devkit ``VOCevaldet``, VOC 2010+ AP), ``{"map": float, "per_class": {c: ap}}``.

    Per class, detections of all images in decreasing score are true positives when
    their best-overlapping ground truth of that class in the image has IoU of at least
    ``iou_threshold`` (the devkit's ``ovmax >= minoverlap``) and is not yet taken; otherwise false positives.
    """
    per_class = {}
    for cls in _classes_with_ground_truth(gt_classes):
        records, num_gt = [], 0
        taken = []
        for image, (gb, gc, db, ds, dc) in enumerate(zip(gt_boxes, gt_classes, det_boxes, det_scores, det_classes)):
            gt = np.asarray(gb).reshape(-1, 4)[np.asarray(gc).ravel() == cls]
            num_gt += len(gt)
            taken.append(np.zeros(len(gt), bool))
            mask = np.asarray(dc).ravel() == cls
            dets, scores = np.asarray(db).reshape(-1, 4)[mask], np.asarray(ds).ravel()[mask]
            overlaps = box_iou(dets, gt)
            records.extend((float(s), image, overlaps[k]) for k, s in enumerate(scores))
        order = np.argsort([-r[0] for r in records], kind="stable")
        true_positive = np.zeros(len(records))
        for rank, k in enumerate(order):
            _, image, overlaps = records[k]
            if overlaps.size:
                best = int(np.argmax(overlaps))
                if overlaps[best] >= iou_threshold and not taken[image][best]:
                    taken[image][best] = True
                    true_positive[rank] = 1
        tp = np.cumsum(true_positive)
        fp = np.cumsum(1 - true_positive)
        recall = tp / num_gt
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        per_class[cls] = voc_average_precision(recall, precision)
    return {"map": float(np.mean(list(per_class.values()))) if per_class else 0.0, "per_class": per_class}


def _coco_image_matches(gt, dets, scores, thresholds, max_detections):
    """COCOeval.evaluateImg for one image and class (area range 'all', no crowd):
    returns ``(scores, matched [T, k])`` of the top ``max_detections`` detections."""
    order = np.argsort(-scores, kind="mergesort")[:max_detections]
    dets, scores = dets[order], scores[order]
    overlaps = box_iou(dets, gt)
    matched = np.zeros((len(thresholds), len(dets)), bool)
    for t, threshold in enumerate(thresholds):
        taken = np.zeros(len(gt), bool)
        for d in range(len(dets)):
            best, best_iou = -1, min(threshold, 1 - 1e-10)
            for g in range(len(gt)):
                if taken[g] or overlaps[d, g] < best_iou:
                    continue
                best, best_iou = g, overlaps[d, g]
            if best >= 0:
                taken[best] = True
                matched[t, d] = True
    return scores, matched


def coco_map(gt_boxes, gt_classes, det_boxes, det_scores, det_classes, iou_thresholds=COCO_IOU_THRESHOLDS,
             max_detections=100):
    """COCO-style mAP as pycocotools' COCOeval (bbox, area 'all', ``maxDets`` = ``max_detections``).

    Per class and IoU threshold, precision at the 101 recall points 0:0.01:1 is
    the precision envelope at the first point reaching that recall (0 past the
    highest recall); AP is their mean. Returns ``{"map": mean over classes and
    thresholds, "map_50": at IoU 0.5, "map_75": at IoU 0.75 (when evaluated),
    "per_class": {c: AP averaged over thresholds}}``.
    """
    thresholds = np.asarray(iou_thresholds, np.float64)
    table = {}
    for cls in _classes_with_ground_truth(gt_classes):
        all_scores, all_matched, num_gt = [], [], 0
        for gb, gc, db, ds, dc in zip(gt_boxes, gt_classes, det_boxes, det_scores, det_classes):
            gt = np.asarray(gb, np.float64).reshape(-1, 4)[np.asarray(gc).ravel() == cls]
            mask = np.asarray(dc).ravel() == cls
            dets = np.asarray(db, np.float64).reshape(-1, 4)[mask]
            scores = np.asarray(ds, np.float64).ravel()[mask]
            num_gt += len(gt)
            if len(gt) == 0 and len(dets) == 0:
                continue
            s, m = _coco_image_matches(gt, dets, scores, thresholds, max_detections)
            all_scores.append(s)
            all_matched.append(m)
        scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
        matched = np.concatenate(all_matched, axis=1) if all_matched else np.zeros((len(thresholds), 0), bool)
        order = np.argsort(-scores, kind="mergesort")
        matched = matched[:, order]
        ap = np.zeros(len(thresholds))
        for t in range(len(thresholds)):
            tp = np.cumsum(matched[t]).astype(np.float64)
            fp = np.cumsum(~matched[t]).astype(np.float64)
            recall = tp / num_gt
            precision = tp / (tp + fp + np.spacing(1))
            precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
            index = np.searchsorted(recall, COCO_RECALL_POINTS, side="left")
            sampled = np.where(index < len(precision), precision[np.minimum(index, len(precision) - 1)], 0.0) \
                if len(precision) else np.zeros(len(COCO_RECALL_POINTS))
            ap[t] = sampled.mean()
        table[cls] = ap
    if not table:
        return {"map": 0.0, "map_50": 0.0, "per_class": {}}
    stacked = np.stack(list(table.values()))  # [classes, thresholds]
    result = {"map": float(stacked.mean()), "per_class": {c: float(v.mean()) for c, v in table.items()}}
    for key, value in (("map_50", 0.5), ("map_75", 0.75)):
        hits = np.flatnonzero(np.isclose(thresholds, value))
        if hits.size:
            result[key] = float(stacked[:, hits[0]].mean())
    return result


def detection_metrics(gt_boxes, gt_classes, det_boxes, det_scores, det_classes):
    """``{"voc_map_50", "coco_map", "coco_map_50", "coco_map_75"}`` of one set of detections."""
    voc = voc_map(gt_boxes, gt_classes, det_boxes, det_scores, det_classes)
    coco = coco_map(gt_boxes, gt_classes, det_boxes, det_scores, det_classes)
    return {"voc_map_50": voc["map"], "coco_map": coco["map"], "coco_map_50": coco["map_50"],
            "coco_map_75": coco["map_75"]}

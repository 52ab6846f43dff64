"""Metrics that Keras lacks, one module per kind of task.

- ``language``: bits per token and perplexity of next-token predictions.
- ``bleu``: corpus BLEU (Papineni et al. 2002) on whitespace-tokenized text.
- ``detection``: box IoU, VOC mAP@0.5 and COCO mAP@[.5:.95].
- ``segmentation``: confusion matrix, per-class precision/recall/IoU and mean IoU.
"""
from keras_zoo.metrics.bleu import corpus_bleu
from keras_zoo.metrics.detection import box_iou, coco_map, detection_metrics, voc_map
from keras_zoo.metrics.language import BitsPerToken, Perplexity
from keras_zoo.metrics.segmentation import MeanIoU, confusion_matrix, mean_iou, per_class_iou, segmentation_report

__all__ = ["BitsPerToken", "MeanIoU", "Perplexity", "box_iou", "coco_map", "confusion_matrix", "corpus_bleu",
           "detection_metrics", "mean_iou", "per_class_iou", "segmentation_report", "voc_map"]

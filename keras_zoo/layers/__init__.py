"""Layers that Keras lacks, written once and shared by the families."""

"""Datasets: tfds wrappers, embedded real data, synthetic tasks, user files."""

"""Classify digit images (PNG/JPG of any size) with a checkpoint or an MLflow run's model."""

from mnist_lab.predict.images import IMAGE_SUFFIXES, find_images, load_classifier, load_digit, predict_images

__all__ = ["IMAGE_SUFFIXES", "find_images", "load_classifier", "load_digit", "predict_images"]

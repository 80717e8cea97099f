"""BackdoorBench's metrics: Acc, ASR, RA on label arrays; ROC AUC for detectors."""

from __future__ import annotations

import numpy as np


def _pair(predictions: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape or predictions.ndim != 1:
        raise ValueError(f"expected two 1-D arrays of one length, got {predictions.shape} and {labels.shape}")
    return predictions, labels


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Acc: the fraction of predictions equal to the labels (on clean test images)."""
    predictions, labels = _pair(predictions, labels)
    return float((predictions == labels).mean()) if labels.size else float("nan")


def attack_success_rate(predictions: np.ndarray, labels: np.ndarray, target: int) -> float:
    """ASR: among triggered images whose TRUE label is not ``target``, the fraction
    predicted as ``target``."""
    predictions, labels = _pair(predictions, labels)
    victims = labels != target
    return float((predictions[victims] == target).mean()) if victims.any() else float("nan")


def robust_accuracy(predictions: np.ndarray, labels: np.ndarray, target: int) -> float:
    """RA: on the same triggered images as ASR, the fraction predicted as the true label."""
    predictions, labels = _pair(predictions, labels)
    victims = labels != target
    return float((predictions[victims] == labels[victims]).mean()) if victims.any() else float("nan")


def roc_auc(clean_scores: np.ndarray, poisoned_scores: np.ndarray) -> float:
    """ROC AUC of a detector whose score is higher for poisoned inputs: the probability
    that a poisoned score exceeds a clean one, ties counting one half (Mann-Whitney)."""
    clean, poisoned = np.asarray(clean_scores, float).ravel(), np.asarray(poisoned_scores, float).ravel()
    if clean.size == 0 or poisoned.size == 0:
        raise ValueError("roc_auc: needs at least one clean and one poisoned score")
    ordered = np.sort(clean)
    below = np.searchsorted(ordered, poisoned, side="left")
    equal = np.searchsorted(ordered, poisoned, side="right") - below
    return float((below + 0.5 * equal).sum() / (clean.size * poisoned.size))

"""Types of the compiled kernel (csrc/bindings.cpp); sifternet.hopfield and
sifternet.repair are its typed Python face."""

from typing import Optional

import numpy as np

def hebbian_weights(patterns: np.ndarray, num_threads: int = 1) -> np.ndarray: ...
def storkey_weights(patterns: np.ndarray, num_threads: int = 1) -> np.ndarray: ...
def recall_overlap(
    patterns: np.ndarray,
    states: np.ndarray,
    indices: np.ndarray,
    *,
    steps: Optional[int],
    order: str,
    seed: int,
    channel: int,
    channels: int,
    thresholds: Optional[np.ndarray],
    margin: float,
    agreement: float,
    max_sweeps: int,
    stats: bool,
    num_threads: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...
def recall_dense(
    weights: np.ndarray,
    states: np.ndarray,
    indices: np.ndarray,
    *,
    steps: Optional[int],
    order: str,
    seed: int,
    channel: int,
    channels: int,
    thresholds: Optional[np.ndarray],
    margin: float,
    agreement: float,
    max_sweeps: int,
    stats: bool,
    num_threads: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...
def repair(
    images: np.ndarray,
    binarised: np.ndarray,
    recalled: np.ndarray,
    *,
    output: str,
    fill_size: int,
    joint_channels: bool,
    num_threads: int,
) -> np.ndarray: ...
def thumbnails(images: np.ndarray, side: int) -> np.ndarray: ...
def nearest_repair(
    images: np.ndarray,
    bits: np.ndarray,
    cuts: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    thumbs: np.ndarray,
    votes: np.ndarray,
    *,
    side: int,
    neighbours: int,
    agreement: float,
    support: bool,
    max_area: int,
    grow: int,
    fill_size: int,
    window: int,
    scored: bool,
    num_threads: int,
) -> tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]: ...
def check_patterns(patterns: object) -> np.ndarray: ...
def _fail_in_row(n_rows: int, failing_row: int, num_threads: int) -> int: ...
def has_openmp() -> bool: ...
def max_threads() -> int: ...

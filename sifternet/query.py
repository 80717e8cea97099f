"""``QueryRepair``: the opt-in query mode, for deployments that may ask the protected model
for labels (docs/method.md, Query mode).

What it needs: a callable ``images -> labels`` (hard labels only: no scores, no
gradients) and a fitted :class:`NearestSeedRepair` (the no-query default) whose seeds are
clean. What it assumes: the trigger is a localised patch no larger than ``patch_size``
pixels on a side. What it does not cover beyond the default repair: image-wide triggers
(blending, warping, signals spread over the image), and patches larger than the bound.

The test that confirms a region is the backdoor's own definition: a trigger makes *any*
input take the label it forces. A region of the image is confirmed as a trigger when
(1) filling it in changes the model's label and (2) pasted at the same place onto clean
seeds that the model labels otherwise (the carriers), it gives them the image's label.
A decisive symbol fails (2): pasted onto another sign it does not make that sign its
class. Candidate regions come first from the memories (where the default repair
changed the label, and where a looser repair would change most), then from a search that
halves the image until any patch within the bound lies whole in one of its boxes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional

import cv2
import numpy as np

from sifternet._checks import check_choice, check_image_batch, check_int
from sifternet.nearest import NearestSeedRepair
from sifternet.purifier import Purification

#: images (B, H, W) or (B, H, W, C) uint8 -> labels (B,) integers: the protected model
Labeller = Callable[[np.ndarray], Any]
#: The looser repair whose changes rank the memories' candidate windows.
PROPOSAL_OPTIONS: dict[str, Any] = {"agreement": 0.7, "tolerance": 20, "max_area": 0.1}

#: Seeds the order of the carriers' labels (:attr:`QueryRepair.carrier_order`).
CARRIER_SEED = 0
#: What confirmed each image's region (:attr:`QueryPurification.found_by` indexes it).
STAGES = ("nothing", "default repair", "memory window", "search")
#: What :class:`QueryRepair` may do with a default repair its window does not confirm.
UNCONFIRMED = ("keep", "undo")
Box = tuple[int, int, int, int]  # y0, x0, y1, x1 (end exclusive)


@dataclass
class QueryPurification:
    """What :meth:`QueryRepair.purify_queried` returns for a batch of B images."""

    #: the purified images, of the input's shape as a batch
    images: np.ndarray
    #: bool (B, H, W): the pixels of a confirmed trigger region, filled in the output
    regions: np.ndarray
    #: int64 (B,): the model queries spent on each image
    queries: np.ndarray
    #: int8 (B,): which stage confirmed the region, an index into :data:`STAGES`
    found_by: np.ndarray


class QueryRepair:
    """The default repair, checked and extended with the model's labels (opt-in).

    Parameters
    ----------
    model : callable
        ``images -> labels``: the protected model, queried with batches of images of the
        repair's shape; only its hard labels are read.
    repair : NearestSeedRepair
        The fitted no-query default (``SifterNet.repairing().fit(seeds)``); its seeds are
        the carriers and the memories.
    patch_size : int
        The bound: triggers up to ``patch_size`` x ``patch_size`` pixels are searched for.
    candidates : int
        Windows the memories propose per image (densest changes of a looser repair).
    carriers : int
        Clean seeds a candidate is pasted onto (:attr:`carrier_order`).
    agreement : int
        How many carriers must take the image's label to confirm the default repair's
        window or a memory window. A box of the search, which the memories did not
        propose, needs every carrier.
    budget : int
        At most this many queries per image (the search stops expanding an image there).
    batch_size : int
        Images per model call.
    unconfirmed : {"keep", "undo"}
        Where the default repair changed the label but its window did not carry that
        label to the carriers: ``"keep"`` the repair and stop there, so every repair the
        default makes stays (triggers no window carries, such as image-wide and per-image
        ones, stay repaired); ``"undo"`` it and go on from the input as it came,
        which gives back the default's clean-accuracy cost where only localised patches
        are possible.

    Per image, by stages (every stage's queries of a batch go in as few model calls as
    ``batch_size`` allows): the labels of the image and of its default repair; where they
    differ, the window the repair moved most is pasted onto carriers, and an unconfirmed
    repair is kept or undone (``unconfirmed``); then the memories' candidate windows,
    then the search, until a region is confirmed or the budget is spent. Results depend
    only on the image, the seeds and the model, so batches and chunks give the same
    output for a model whose labels do not depend on the batch.
    """

    def __init__(
        self,
        model: Labeller,
        repair: NearestSeedRepair,
        *,
        patch_size: int = 5,
        candidates: int = 3,
        carriers: int = 3,
        agreement: int = 2,
        budget: int = 40,
        batch_size: int = 1024,
        unconfirmed: str = "keep",
    ) -> None:
        if not callable(model):
            raise TypeError(f"model: expected a callable images -> labels, got {type(model).__name__}")
        if not isinstance(repair, NearestSeedRepair):
            raise TypeError(
                "repair: expected a fitted NearestSeedRepair (SifterNet.repairing().fit(seeds)), "
                f"got {type(repair).__name__}"
            )
        height, width = repair.image_shape[:2]  # RuntimeError if not fitted
        check_int("patch_size", patch_size, low=1, high=min(height, width) - 2)
        check_int("candidates", candidates, low=0, high=64)
        check_int("carriers", carriers, low=1, high=len(repair.seeds))
        check_int("agreement", agreement, low=1, high=carriers)
        check_int("budget", budget, low=2, high=2**20)
        check_int("batch_size", batch_size, low=1, high=2**20)
        check_choice("unconfirmed", unconfirmed, UNCONFIRMED)
        self.model, self.repair = model, repair
        self.patch_size, self.candidates, self.carriers = patch_size, candidates, carriers
        self.agreement, self.budget, self.batch_size = agreement, budget, batch_size
        self.unconfirmed = unconfirmed
        options = {**dataclasses.asdict(repair.config), **PROPOSAL_OPTIONS}
        self.proposer = NearestSeedRepair(num_threads=repair.num_threads, **options).fit(repair.seeds)
        self._seed_labels: Optional[np.ndarray] = None
        #: images purified so far, by the queries each cost (index: queries)
        self.query_histogram = np.zeros(budget + 1, np.int64)

    def __repr__(self) -> str:
        return (
            f"QueryRepair(patch_size={self.patch_size}, candidates={self.candidates}, carriers="
            f"{self.carriers}, agreement={self.agreement}, budget={self.budget}, unconfirmed="
            f"{self.unconfirmed!r}, {self.repair!r})"
        )

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(H, W) or (H, W, C) of the repair's images."""
        return self.repair.image_shape

    @property
    def seed_labels(self) -> np.ndarray:
        """The model's labels of the seeds (queried once, on first use; not counted per
        image)."""
        if self._seed_labels is None:
            self._seed_labels = self.labels(self.repair.seeds)
        return self._seed_labels

    @property
    def carrier_order(self) -> np.ndarray:
        """Seed indices in the order carriers are taken: one seed of each label (by the
        model), the labels in a fixed shuffled order, then a second seed of each, and so
        on. A few carriers so span unrelated classes whatever the class numbering (related
        classes, such as speed limits, often have neighbouring numbers; a piece of a
        decisive symbol can carry its class to a related one, a trigger to any)."""
        labels = self.seed_labels
        classes, label_index = np.unique(labels, return_inverse=True)
        seeds_shuffled = np.random.default_rng(CARRIER_SEED).permutation(len(labels))
        class_place = np.argsort(np.random.default_rng(CARRIER_SEED).permutation(len(classes)))
        rank = np.zeros(len(labels), np.int64)  # how many seeds of its label come before it
        for k in range(len(classes)):
            mine = seeds_shuffled[label_index[seeds_shuffled] == k]
            rank[mine] = np.arange(len(mine))
        return np.lexsort((class_place[label_index], rank))

    def labels(self, images: np.ndarray) -> np.ndarray:
        """The model's labels of ``images``, ``batch_size`` at a time, checked: one integer
        label per image."""
        parts = []
        images = images.reshape((len(images),) + self.image_shape)  # as the model takes them
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            got = np.asarray(self.model(batch))
            if got.shape != (len(batch),) or not (
                np.issubdtype(got.dtype, np.integer) or got.dtype == np.bool_
            ):
                raise ValueError(
                    f"model: expected one integer label per image, shape ({len(batch)},), got "
                    f"{got.dtype} of shape {got.shape}"
                )
            parts.append(got.astype(np.int64))
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def purify(self, images: np.ndarray, **ignored: Any) -> np.ndarray:
        """The purified ``images``, of their own shape (see :meth:`purify_queried`);
        ``index_offset`` / ``indices`` are accepted, as the other purifiers take them, and
        change nothing."""
        return self.purify_queried(images).images.reshape(np.shape(images))

    def purify_scored(self, images: np.ndarray, **ignored: Any) -> Purification:
        """:meth:`purify_queried` in the other purifiers' form: the images, the confirmed
        regions as the changed pixels, and a score of 1.0 where a trigger was confirmed
        (0.0 elsewhere), so that a threshold between abstains from those images."""
        done = self.purify_queried(images)
        return Purification(done.images, done.regions, (done.found_by > 0).astype(np.float64))

    def purify_queried(self, images: np.ndarray) -> QueryPurification:
        """The purified ``images`` (one image or a batch of the repair's shape; returned
        as a batch), the confirmed region of each and the queries each cost."""
        batch, _ = check_image_batch("images", images, self.image_shape)
        run = _Run(self, batch)
        run.verify_repair()
        run.memory_candidates()
        run.search()
        shape = (len(batch),) + self.image_shape
        np.add.at(self.query_histogram, np.minimum(run.queries, self.budget), 1)
        return QueryPurification(run.out.reshape(shape), run.regions, run.queries, run.found_by)


def query_distribution(queries: np.ndarray) -> dict[str, float]:
    """Mean, median, 90th percentile and largest of per-image query counts."""
    if len(queries) == 0:
        return {"images": 0}
    return {
        "mean": round(float(np.mean(queries)), 2),
        "median": float(np.median(queries)),
        "90th percentile": float(np.percentile(queries, 90)),
        "max": int(np.max(queries)),
    }


def inpaint(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` (H, W, C) uint8 with the ``mask`` pixels filled from around them (OpenCV's
    Telea inpainting, radius 3, each channel alone beyond 3 channels)."""
    mask = mask.astype(np.uint8)
    if image.shape[2] in (1, 3):
        return cv2.inpaint(image, mask, 3, cv2.INPAINT_TELEA).reshape(image.shape)
    planes = [cv2.inpaint(image[..., c], mask, 3, cv2.INPAINT_TELEA) for c in range(image.shape[2])]
    return np.stack(planes, axis=-1)


def box_mask(shape: tuple[int, int], box: Box) -> np.ndarray:
    """bool ``shape``: True inside ``box``."""
    mask = np.zeros(shape, bool)
    mask[box[0] : box[2], box[1] : box[3]] = True
    return mask


def densest_windows(change: np.ndarray, side: int, count: int) -> list[Box]:
    """Up to ``count`` non-overlapping ``side`` x ``side`` windows of ``change`` (H, W), densest
    first (ties to the top-left); windows without any change are not proposed."""
    padded = np.pad(change.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = padded[side:, side:] - padded[:-side, side:] - padded[side:, :-side] + padded[:-side, :-side]
    boxes: list[Box] = []
    for _ in range(count):
        y, x = np.unravel_index(int(sums.argmax()), sums.shape)
        if sums[y, x] <= 0:
            break
        boxes.append((int(y), int(x), int(y) + side, int(x) + side))
        sums[max(0, y - side + 1) : y + side, max(0, x - side + 1) : x + side] = -1
    return boxes


def halves(box: Box, bound: int) -> list[Box]:
    """The (up to) four overlapping boxes that split ``box`` in two along each axis so that
    every square of side ``bound`` inside ``box`` lies whole inside one of them."""

    def spans(start: int, end: int) -> list[tuple[int, int]]:
        length = min(end - start, (end - start + bound + 1) // 2)
        return sorted({(start, start + length), (end - length, end)})

    return [(y0, x0, y1, x1) for y0, y1 in spans(box[0], box[2]) for x0, x1 in spans(box[1], box[3])]


class _Run:
    """One batch's purification: its state between the stages."""

    def __init__(self, query: QueryRepair, batch: np.ndarray) -> None:
        self.q, self.x = query, batch
        self.seeds = query.repair.seeds.reshape((-1,) + batch.shape[1:])
        repaired = query.repair.purify_scored(batch.reshape((len(batch),) + query.image_shape))
        self.repaired = repaired.flipped
        self.out = repaired.images.reshape(batch.shape).copy()
        both = query.labels(np.concatenate([batch, self.out]))
        self.input_labels, self.label = both[: len(batch)], both[len(batch) :].copy()
        self.queries = np.full(len(batch), 2, np.int64)
        self.regions = np.zeros(batch.shape[:3], bool)
        self.done = np.zeros(len(batch), bool)
        self.found_by = np.zeros(len(batch), np.int8)

    def _carriers(self, b: int, label: int) -> np.ndarray:
        """Seeds to paste image ``b``'s regions onto, in :attr:`QueryRepair.carrier_order`,
        but not those the model labels ``label``."""
        order = self.q.carrier_order
        return order[self.q.seed_labels[order] != label]

    def _carried(
        self, items: list[tuple[int, np.ndarray]], labels: np.ndarray, carriers: int, needed: int
    ) -> np.ndarray:
        """For each (image b, mask): whether ``needed`` of the first ``carriers`` seeds the
        model does not label ``labels[i]`` (of as many as there are) take that label with
        the image's masked pixels pasted in; counts the queries."""
        pasted, owner = [], []
        for i, (b, mask) in enumerate(items):
            for c in self._carriers(b, labels[i])[:carriers]:
                image = self.seeds[c].copy()
                image[mask] = self.x[b][mask]
                pasted.append(image)
                owner.append(i)
        got = self.q.labels(np.stack(pasted)) if pasted else np.zeros(0, np.int64)
        hits = np.bincount(np.asarray(owner, np.int64)[got == labels[owner]], minlength=len(items))
        asked = np.bincount(np.asarray(owner, np.int64), minlength=len(items))
        np.add.at(self.queries, [b for b, _ in items], asked)
        return (asked > 0) & (hits >= np.minimum(needed, asked))

    def verify_repair(self) -> None:
        """Where the default repair changed the label: keep its repair inside the densest
        window of the pixels it repaired if that window carries the input's label to the
        carriers (all of its repair if the window's alone leaves the label), else keep all
        of it or go on from the input as it came (``unconfirmed``). Without the budget for
        it, the repair stays as it is."""
        side, shape = self.q.patch_size + 2, self.x.shape[1:3]
        changed = [
            int(b)
            for b in np.flatnonzero(self.label != self.input_labels)
            if self._affordable(int(b), self.q.carriers + 1)
        ]
        moved = np.abs(self.out.astype(np.int16) - self.x).max(axis=-1)  # how far each pixel moved
        windows = [box_mask(shape, box) for b in changed for box in densest_windows(moved[b], side, 1)]
        if len(windows) != len(changed):  # a model whose labels vary from call to call
            raise ValueError(
                "model: gave an image a new label with no pixel changed; expected the same label "
                "for the same image"
            )
        confirmed = self._carried(
            list(zip(changed, windows)), self.input_labels[changed], self.q.carriers, self.q.agreement
        )
        kept = [(b, window & self.repaired[b]) for b, window, ok in zip(changed, windows, confirmed) if ok]
        partial = np.stack(
            [np.where(mask[..., None], self.out[b], self.x[b]) for b, mask in kept] or [self.x[:0]]
        )
        labels = self.q.labels(partial) if kept else np.zeros(0, np.int64)
        for (b, mask), image, label in zip(kept, partial, labels):
            self.queries[b] += 1
            self.found_by[b] = STAGES.index("default repair")
            self.done[b] = True
            if label != self.input_labels[b]:
                self.out[b], self.regions[b], self.label[b] = image, mask, label
            else:
                self.regions[b] = self.repaired[b]
        for b, ok in zip(changed, confirmed):
            if ok:
                continue
            if self.q.unconfirmed == "keep":
                self.done[b] = True
            else:
                self.out[b], self.label[b] = self.x[b], self.input_labels[b]

    def _confirm(self, items: list[tuple[int, Box]], agreement: int, stage: str) -> None:
        """Fill each (image, box) of the current output; where the label changes, paste
        the box onto carriers; a box ``agreement`` of them confirm: its fill becomes the
        output, found by ``stage``."""
        shape = self.x.shape[1:3]
        fills = [inpaint(self.out[b], box_mask(shape, box)) for b, box in items]
        filled = self.q.labels(np.stack(fills)) if fills else np.zeros(0, np.int64)
        for b, _ in items:
            self.queries[b] += 1
        flipped = [i for i, (b, _) in enumerate(items) if filled[i] != self.label[b]]
        masks = [(items[i][0], box_mask(shape, items[i][1])) for i in flipped]
        labels = self.label[[b for b, _ in masks]]
        confirmed = self._carried(masks, labels, self.q.carriers, agreement)
        for i, (b, mask), ok in zip(flipped, masks, confirmed):
            if ok and not self.done[b]:
                self.out[b], self.regions[b], self.done[b] = fills[i], mask, True
                self.found_by[b] = STAGES.index(stage)

    def _affordable(self, b: int, cost: int) -> bool:
        return not self.done[b] and self.queries[b] + cost <= self.q.budget

    def memory_candidates(self) -> None:
        """The densest windows of a looser repair's changes, best first, one per image per
        pass."""
        q = self.q
        side = q.patch_size + 2
        proposed = q.proposer.purify(self.x.reshape((len(self.x),) + q.image_shape)).reshape(self.x.shape)
        change = np.abs(proposed.astype(np.int16) - self.x).max(axis=-1)
        windows = [densest_windows(change[b], side, q.candidates) for b in range(len(self.x))]
        cost = 1 + q.carriers
        for k in range(q.candidates):
            self._confirm(
                [(b, w[k]) for b, w in enumerate(windows) if len(w) > k and self._affordable(b, cost)],
                q.agreement,
                "memory window",
            )

    def search(self) -> None:
        """Halve the image, keep the boxes that carry the image's label to a carrier, until
        the boxes are at most ``patch_size`` + 4 on a side; confirm up to four of those
        per image (every carrier must agree)."""
        q = self.q
        height, width = self.x.shape[1:3]
        stop, cost = q.patch_size + 4, 1 + q.carriers
        first = halves((0, 0, height, width), q.patch_size)
        frontier = {b: first for b in range(len(self.x)) if not self.done[b]}
        while frontier:
            items = [
                (b, box)
                for b, boxes in frontier.items()
                for box in boxes[: max(0, q.budget - int(self.queries[b]))]
            ]
            masks = [(b, box_mask((height, width), box)) for b, box in items]
            carried = self._carried(masks, self.label[[b for b, _ in masks]], 1, 1)
            grown: dict[int, list[Box]] = {}
            small: dict[int, list[Box]] = {}
            for (b, box), hit in zip(items, carried):
                if not hit:
                    continue
                if box[2] - box[0] <= stop and box[3] - box[1] <= stop:
                    small.setdefault(b, []).append(box)
                elif len(grown.get(b, ())) < 8:
                    grown.setdefault(b, []).extend(halves(box, q.patch_size))
            for k in range(4):  # one box per image per pass
                self._confirm(
                    [(b, box[k]) for b, box in small.items() if len(box) > k and self._affordable(b, cost)],
                    q.carriers,
                    "search",
                )
            frontier = {b: boxes for b, boxes in grown.items() if not self.done[b]}

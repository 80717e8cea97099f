"""Common image corruptions at five severities, for TeCo (NumPy and OpenCV only).

Re-implemented from the descriptions of ImageNet-C / CIFAR-10-C (Hendrycks & Dietterich,
ICLR 2019). The per-severity parameters are CIFAR-10-C's published table (the variant
made for 32x32 images), re-typed; sizes given there in pixels of a 32-pixel side
(elastic transform) are scaled to the image's shorter side, so 28x28 images get the same
relative strength. 14 of ImageNet-C's 15 corruptions are here; ``frost`` is left out
because it overlays crops of six frost photographs that ship with ImageNet-C (data, not
parameters).

Every corruption takes uint8 images (B, H, W) or (B, H, W, C) with C = 1 or 3 (RGB) and
returns uint8 of the same shape. The random ones draw, for image ``b``, from
``np.random.default_rng([seed, code, indices[b]])`` (``code`` is the corruption's place
in :data:`IMAGENET_C`), so a batch, any chunk of it or one image alone gives the same
pixels; the stream does not depend on the severity, so the severities of one image share
their noise and differ only in strength. Differences from the reference code, which do
not change what a corruption is: OpenCV's bilinear warps replace SciPy's zoom and
``map_coordinates``; a Gaussian-weighted line kernel replaces ImageMagick's motion blur;
OpenCV's JPEG coder replaces PIL's; results are rounded, not truncated, to uint8.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import cv2
import numpy as np

#: ImageNet-C's 15 corruptions, in its order
IMAGENET_C = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)

#: corruptions of :data:`IMAGENET_C` not implemented, with the reason
LEFT_OUT = {"frost": "overlays ImageNet-C's frost photographs, which are data, not parameters"}

SEVERITIES = 5

#: images float32 (B, H, W, C) in [0, 1], severity 1..5, one random generator per image
#: -> corrupted images float32 of the same shape (clipped to [0, 1] by the caller)
CorruptionFunction = Callable[[np.ndarray, int, Sequence[np.random.Generator]], np.ndarray]

_CV_MAX_CHANNELS = 128  # channels per OpenCV filter call (OpenCV 5's limit; 4.x allows 512)


def _planewise(function: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Apply a same-size OpenCV filter to every (H, W) plane of x (B, H, W, C), in
    multi-channel calls."""
    b, h, w, c = x.shape
    planes = np.ascontiguousarray(x.transpose(1, 2, 0, 3).reshape(h, w, b * c))
    out = np.concatenate(
        [
            function(np.ascontiguousarray(planes[:, :, start : start + _CV_MAX_CHANNELS])).reshape(h, w, -1)
            for start in range(0, b * c, _CV_MAX_CHANNELS)
        ],
        axis=2,
    )
    return out.reshape(h, w, b, c).transpose(2, 0, 1, 3)


def _per_image(function: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Apply an (H, W, C) -> (H, W, C) function to each image of x (B, H, W, C)."""
    return np.stack([function(image).reshape(image.shape) for image in x])


def _gaussian_blur(
    x: np.ndarray, sigma: float, truncate: float = 4.0, border: int = cv2.BORDER_REPLICATE
) -> np.ndarray:
    """Gaussian blur of every plane of x (B, H, W, C) with a kernel of radius
    ``int(truncate * sigma + 0.5)`` (SciPy's and scikit-image's support; their default
    border, the nearest pixel, is OpenCV's replicate)."""
    radius = int(truncate * sigma + 0.5)
    if radius < 1:
        return x
    side = 2 * radius + 1
    return _planewise(lambda p: cv2.GaussianBlur(p, (side, side), sigma, borderType=border), x)


def _zoom(image: np.ndarray, factor: float) -> np.ndarray:
    """Image (H, W, C) magnified by ``factor`` about its centre, cropped to its own size
    (bilinear, border replicated)."""
    h, w = image.shape[:2]
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    # output pixel p samples the input at centre + (p - centre) / factor
    matrix = np.array(
        [[1 / factor, 0, cx * (1 - 1 / factor)], [0, 1 / factor, cy * (1 - 1 / factor)]], np.float32
    )
    return cv2.warpAffine(
        image, matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    ).reshape(image.shape)


def _motion_blur(image: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    """One-sided motion blur of (H, W, C): the weighted mean of the 2 * radius + 1 pixels
    on a line from each pixel towards ``angle`` degrees (counter-clockwise from +x),
    weights exp(-i^2 / (2 sigma^2)) at distance i (border replicated)."""
    steps = np.arange(2 * radius + 1)
    theta = np.deg2rad(angle)
    dy, dx = np.rint(-steps * np.sin(theta)).astype(int), np.rint(steps * np.cos(theta)).astype(int)
    kernel = np.zeros((dy.max() - dy.min() + 1, dx.max() - dx.min() + 1), np.float32)
    np.add.at(kernel, (dy - dy.min(), dx - dx.min()), np.exp(-(steps**2) / (2.0 * sigma**2)))
    kernel /= kernel.sum()
    return cv2.filter2D(
        image, -1, kernel, anchor=(int(-dx.min()), int(-dy.min())), borderType=cv2.BORDER_REPLICATE
    ).reshape(image.shape)


def _draw(
    rngs: Sequence[np.random.Generator], draw: Callable[[np.random.Generator], np.ndarray]
) -> np.ndarray:
    """One draw per image, stacked."""
    return np.stack([draw(rng) for rng in rngs])


# -- noise ---------------------------------------------------------------------------
def gaussian_noise(x: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """Additive Gaussian noise of standard deviation 0.04 .. 0.10."""
    c = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    return x + c * _draw(rngs, lambda rng: rng.standard_normal(x.shape[1:], np.float32))


def shot_noise(x: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """Poisson noise: Poisson(c x) / c with c = 500 .. 50 photons at full intensity."""
    c = (500, 250, 100, 75, 50)[severity - 1]
    return np.stack([rng.poisson(image * c) / c for image, rng in zip(x, rngs)]).astype(np.float32)


def impulse_noise(x: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """Salt and pepper: a fraction 0.01 .. 0.07 of the values (each channel on its own),
    half set to 0, half to 1."""
    c = (0.01, 0.02, 0.03, 0.05, 0.07)[severity - 1]
    u = _draw(rngs, lambda rng: rng.random(x.shape[1:], np.float32))
    return np.where(u < c / 2, 0.0, np.where(u < c, 1.0, x)).astype(np.float32)


# -- blur ----------------------------------------------------------------------------
def defocus_blur(x: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """Convolution with a disk of radius 0.3 .. 1.5 pixels, anti-aliased by a 3x3
    Gaussian of sigma 0.1 .. 0.6."""
    radius, alias = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))[severity - 1]
    half = int(np.ceil(radius)) + 1
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    kernel = cv2.GaussianBlur(
        (yy**2 + xx**2 <= radius**2).astype(np.float32), (3, 3), alias, borderType=cv2.BORDER_CONSTANT
    )
    kernel /= kernel.sum()
    return _planewise(lambda p: cv2.filter2D(p, -1, kernel), x)


def glass_blur(x: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """Gaussian blur (sigma 0.05 .. 0.4), then 1 or 2 passes that swap each interior pixel
    with a random neighbour at offset in [-d, d) (d = 1), bottom-right to top-left, then
    the blur again."""
    sigma, delta, passes = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))[severity - 1]
    b, h, w, _ = x.shape
    rows, cols = np.arange(h - delta, delta, -1), np.arange(w - delta, delta, -1)
    offsets = _draw(rngs, lambda rng: rng.integers(-delta, delta, (passes, len(rows), len(cols), 2)))
    y = np.rint(np.clip(_gaussian_blur(x, sigma), 0, 1) * 255) / 255
    batch = np.arange(b)
    for p in range(passes):
        for i, row in enumerate(rows):
            for j, col in enumerate(cols):
                other_row, other_col = row + offsets[:, p, i, j, 1], col + offsets[:, p, i, j, 0]
                here = y[:, row, col].copy()
                y[:, row, col] = y[batch, other_row, other_col]
                y[batch, other_row, other_col] = here
    return _gaussian_blur(y.astype(np.float32), sigma)


def motion_blur(x: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """Motion blur of radius 6 .. 9 and sigma 1 .. 2.5 at a random angle in [-45, 45)."""
    radius, sigma = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))[severity - 1]
    angles = [rng.uniform(-45, 45) for rng in rngs]
    return np.stack([_motion_blur(image, radius, sigma, angle) for image, angle in zip(x, angles)])


def zoom_blur(x: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """The mean of the image and its central zooms by 1.00, 1.01, ... up to 1.05 .. 1.25."""
    count = (6, 11, 16, 21, 26)[severity - 1]
    factors = 1.0 + 0.01 * np.arange(count)
    return _per_image(lambda image: (image + sum(_zoom(image, f) for f in factors)) / (count + 1), x)


# -- weather -------------------------------------------------------------------------
def snow(x: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """Snow: a Gaussian layer (mean, sd) zoomed, thresholded and motion-blurred at a random
    angle in [-135, -45), added with its 180-degree rotation to the image, which is first
    lightened towards 1.5 x grey + 0.5."""
    mean, sd, zoom, threshold, radius, sigma, keep = (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    )[severity - 1]
    grey = x if x.shape[3] == 1 else (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    lightened = keep * x + (1 - keep) * np.maximum(x, 1.5 * grey + 0.5)
    out = np.empty_like(x)
    for b, rng in enumerate(rngs):
        layer = rng.normal(mean, sd, x.shape[1:3] + (1,)).astype(np.float32)
        layer = _zoom(layer, zoom)
        layer = np.clip(np.where(layer < threshold, 0, layer), 0, 1)
        layer = _motion_blur(layer, radius, sigma, rng.uniform(-135, -45))
        out[b] = lightened[b] + layer + layer[::-1, ::-1]
    return out


def _plasma(rngs: Sequence[np.random.Generator], size: int, decay: float) -> np.ndarray:
    """Plasma fractals (B, size, size) in [0, 1], size a power of two: diamond-square
    midpoint displacement on a torus, the displacement shrinking by decay^2 a level."""
    levels = size.bit_length() - 1
    noise = _draw(rngs, lambda rng: rng.uniform(-1, 1, (levels, 3, size // 2, size // 2)))
    grid = np.zeros((len(rngs), size, size))
    step, amplitude = size, 1.0
    for level in range(levels):
        half, n = step // 2, size // step
        corners = grid[:, ::step, ::step]
        right, down = np.roll(corners, -1, 2), np.roll(corners, -1, 1)
        grid[:, half::step, half::step] = (
            corners + right + down + np.roll(down, -1, 2)
        ) / 4 + amplitude * noise[:, level, 0, :n, :n]
        centres = grid[:, half::step, half::step]
        grid[:, ::step, half::step] = (
            corners + right + centres + np.roll(centres, 1, 1)
        ) / 4 + amplitude * noise[:, level, 1, :n, :n]
        grid[:, half::step, ::step] = (
            corners + down + centres + np.roll(centres, 1, 2)
        ) / 4 + amplitude * noise[:, level, 2, :n, :n]
        step, amplitude = half, amplitude / decay**2
    grid -= grid.min(axis=(1, 2), keepdims=True)
    return grid / np.maximum(grid.max(axis=(1, 2), keepdims=True), 1e-12)


def fog(x: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """Fog: a plasma fractal of strength 0.2 .. 1.5 (decay 3 .. 1.75) added, then the
    image rescaled by max / (max + strength)."""
    strength, decay = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))[severity - 1]
    b, h, w, _ = x.shape
    size = 1 << (max(h, w) - 1).bit_length()  # the power of two that covers the image
    plasma = _plasma(rngs, size, decay)[:, :h, :w, None].astype(np.float32)
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    return (x + strength * plasma) * peak / (peak + strength)


def brightness(x: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """HSV value + 0.05 .. 0.3 (for grey images the value is the intensity)."""
    c = (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1]
    if x.shape[3] == 1:
        return x + c
    b, h, w, _ = x.shape
    hsv = cv2.cvtColor(np.ascontiguousarray(x.reshape(b * h, w, 3)), cv2.COLOR_RGB2HSV)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).reshape(x.shape)


# -- digital -------------------------------------------------------------------------
def contrast(x: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """Each channel pulled towards its mean: (x - mean) * 0.75 .. 0.15 + mean."""
    c = (0.75, 0.5, 0.4, 0.3, 0.15)[severity - 1]
    mean = x.mean(axis=(1, 2), keepdims=True)
    return (x - mean) * c + mean


def elastic_transform(x: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """A random affine warp (three control points moved by up to a fraction of the side),
    then a displacement field: uniform noise smoothed by a Gaussian (sigma a fraction of
    the side, truncated at 3 sigma) times alpha (a fraction of the side); bilinear,
    borders reflected."""
    b, h, w, _ = x.shape
    alpha, sigma, shift = (
        min(h, w) * fraction
        for fraction in (
            (0, 0, 0.08),
            (0.05, 0.2, 0.07),
            (0.08, 0.06, 0.06),
            (0.1, 0.04, 0.05),
            (0.1, 0.03, 0.03),
        )[severity - 1]
    )
    centre, third = np.array([w // 2, h // 2], np.float32), min(h, w) // 3
    source = np.array([centre + third, [centre[0] + third, centre[1] - third], centre - third], np.float32)
    draws = [(rng.uniform(-shift, shift, (3, 2)), rng.uniform(-1, 1, (2, h, w))) for rng in rngs]
    fields = np.stack([field for _, field in draws]).astype(np.float32).transpose(0, 2, 3, 1)  # (B, H, W, 2)
    fields = alpha * _gaussian_blur(fields, sigma, truncate=3.0, border=cv2.BORDER_REFLECT)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty_like(x)
    for k, ((moved, _), image) in enumerate(zip(draws, x)):
        matrix = cv2.getAffineTransform(source, (source + moved).astype(np.float32))
        warped = cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT_101).reshape(image.shape)
        out[k] = cv2.remap(
            warped,
            gx + fields[k, ..., 0],
            gy + fields[k, ..., 1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT,
        ).reshape(image.shape)
    return out


def pixelate(x: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """Box-downsampled to 0.95 .. 0.65 of the side, then resized back (OpenCV's area
    interpolation both ways)."""
    c = (0.95, 0.9, 0.85, 0.75, 0.65)[severity - 1]
    h, w = x.shape[1:3]
    small = (int(w * c), int(h * c))
    return _per_image(
        lambda image: cv2.resize(
            cv2.resize(image, small, interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_AREA
        ),
        x,
    )


def jpeg_compression(x: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """JPEG at quality 80 .. 40 (OpenCV's coder; colour images are taken as RGB)."""
    quality = (80, 65, 58, 50, 40)[severity - 1]

    def code(image: np.ndarray) -> np.ndarray:
        pixels = np.rint(image * 255).astype(np.uint8)
        pixels = pixels[..., ::-1] if pixels.shape[2] == 3 else pixels[..., 0]  # OpenCV codes BGR
        _, data = cv2.imencode(".jpg", np.ascontiguousarray(pixels), [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if decoded is None:  # pragma: no cover - OpenCV decodes the JPEG it has just encoded
            raise RuntimeError("jpeg_compression: OpenCV could not decode its own JPEG")
        decoded = decoded[..., ::-1] if decoded.ndim == 3 else decoded
        return decoded.astype(np.float32) / 255

    return _per_image(code, x)


#: The implemented corruptions by name (ImageNet-C's names), in ImageNet-C's order.
CORRUPTIONS: dict[str, CorruptionFunction] = {
    name: function
    for name, function in (
        ("gaussian_noise", gaussian_noise),
        ("shot_noise", shot_noise),
        ("impulse_noise", impulse_noise),
        ("defocus_blur", defocus_blur),
        ("glass_blur", glass_blur),
        ("motion_blur", motion_blur),
        ("zoom_blur", zoom_blur),
        ("snow", snow),
        ("fog", fog),
        ("brightness", brightness),
        ("contrast", contrast),
        ("elastic_transform", elastic_transform),
        ("pixelate", pixelate),
        ("jpeg_compression", jpeg_compression),
    )
}


def corrupt(
    images: np.ndarray,
    name: str,
    severity: int,
    *,
    indices: Optional[Union[Sequence[int], np.ndarray]] = None,
    seed: int = 0,
) -> np.ndarray:
    """``images`` under corruption ``name`` at ``severity`` (1..5).

    Parameters
    ----------
    images : uint8 (B, H, W) or (B, H, W, C), C = 1 or 3 (RGB)
    name : one of :data:`CORRUPTIONS`
    severity : 1 (mildest) .. 5
    indices : global index of each image, keying its random stream (default 0..B-1)
    seed : seed of the random streams

    Returns
    -------
    uint8 array of the shape of ``images``.
    """
    if name not in CORRUPTIONS:
        hint = f" ({LEFT_OUT[name]})" if name in LEFT_OUT else ""
        raise ValueError(f"corruption: unknown {name!r}{hint}; expected one of {tuple(CORRUPTIONS)}")
    if (
        isinstance(severity, bool)
        or not isinstance(severity, (int, np.integer))
        or not 1 <= severity <= SEVERITIES
    ):
        raise ValueError(f"severity: expected an int in 1..{SEVERITIES}, got {severity!r}")
    images = np.asarray(images)
    if (
        images.dtype != np.uint8
        or images.ndim not in (3, 4)
        or (images.ndim == 4 and images.shape[3] not in (1, 3))
    ):
        raise ValueError(
            "images: expected uint8 (B, H, W) or (B, H, W, C) with C = 1 or 3, "
            f"got {images.dtype} {images.shape}"
        )
    keys = np.arange(len(images)) if indices is None else np.asarray(indices)
    if keys.shape != (len(images),) or not np.issubdtype(keys.dtype, np.integer):
        raise ValueError(f"indices: expected {len(images)} integers, got {keys.dtype} {keys.shape}")
    if len(images) == 0:
        return images.copy()
    code = IMAGENET_C.index(name)
    rngs = [np.random.default_rng([seed, code, int(index)]) for index in keys]
    x = images.reshape(images.shape[:3] + (-1,)).astype(np.float32) / 255
    out = CORRUPTIONS[name](x, int(severity), rngs)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8).reshape(images.shape)


__all__ = ["CORRUPTIONS", "IMAGENET_C", "LEFT_OUT", "SEVERITIES", "corrupt"]

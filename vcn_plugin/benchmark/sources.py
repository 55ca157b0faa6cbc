"""Source photos: listing identity folders, finding the face once per photo, cutting it out.

Every photo is searched once with dlib's HOG detector (upsample 1, then 2 when nothing is
found); photos without a detectable face are skipped and reported. When a photo holds several
faces the largest box is used. Results are cached in a JSON file so a benchmark directory can be
rebuilt without detecting again.

A cut-out (:class:`Cutout`) is the photo resampled so that the face box is
:data:`CANONICAL_FACE_WIDTH` pixels wide (so source resolution and crop size do not tell who a
person is), with a soft head-shaped alpha mask of the same proportions for every source.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: face-box width of every cut-out, in pixels
CANONICAL_FACE_WIDTH = 128
#: photos are searched at most this large (longest side), for speed
DETECT_MAX_SIDE = 640


@dataclass
class SourcePhoto:
    """One photo of one identity with its detected face box (x1, y1, x2, y2, original pixels)."""

    identity: str
    path: Path
    box: tuple[float, float, float, float]
    grayscale: bool


@dataclass
class Cutout:
    """A face cut-out ready to composite: float RGB in [0, 1], alpha, and the face box."""

    rgb: np.ndarray  # (h, w, 3) float32
    alpha: np.ndarray  # (h, w) float32
    face_box: np.ndarray  # (4,) x1, y1, x2, y2 in cut-out pixels
    grayscale_source: bool

    @property
    def corners(self) -> np.ndarray:
        """The face box's four corners (4, 2), clockwise from top-left."""
        x1, y1, x2, y2 = self.face_box
        return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)


def list_identities(faces_dir: str | Path) -> dict[str, list[Path]]:
    """Identity name -> sorted photo paths, for every subfolder of ``faces_dir`` holding images."""
    root = Path(faces_dir)
    if not root.is_dir():
        raise ValueError(f"faces directory {root} does not exist; pass a folder of identity subfolders")
    identities = {
        d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for d in sorted(root.iterdir())
        if d.is_dir()
    }
    identities = {k: v for k, v in identities.items() if v}
    if not identities:
        raise ValueError(f"{root} has no identity subfolders with images (*.jpg, *.png, ...)")
    return identities


def load_rgb(path: str | Path) -> tuple[np.ndarray, bool]:
    """Photo as uint8 RGB plus whether the source is grayscale (mode L or equal channels)."""
    with Image.open(path) as im:
        grayscale = im.mode in ("L", "LA", "1", "I", "I;16")
        rgb = np.asarray(im.convert("RGB"))
    if not grayscale:
        small = rgb[::4, ::4].astype(np.int16)
        grayscale = bool(np.abs(small[..., 0] - small[..., 1]).max() <= 2 and np.abs(small[..., 1] - small[..., 2]).max() <= 2)
    return rgb, grayscale


_DETECTOR = None


def hog_detector():
    """dlib's frontal HOG face detector (created once)."""
    global _DETECTOR
    if _DETECTOR is None:
        import dlib

        _DETECTOR = dlib.get_frontal_face_detector()
    return _DETECTOR


def detect_largest_face(rgb: np.ndarray) -> tuple[float, float, float, float] | None:
    """Largest dlib HOG face box (x1, y1, x2, y2) in ``rgb``; upsample 1, then 2; None if none."""
    scale = min(1.0, DETECT_MAX_SIDE / max(rgb.shape[:2]))
    work = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    work = np.ascontiguousarray(work)
    for upsample in (1, 2):
        rects = hog_detector()(work, upsample)
        if len(rects):
            r = max(rects, key=lambda r: r.width() * r.height())
            return tuple(float(v) / scale for v in (r.left(), r.top(), r.right() + 1, r.bottom() + 1))
    return None


class FaceBoxCache:
    """JSON cache of detected face boxes keyed by absolute path, size and mtime of the photo."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.entries: dict[str, list | None] = {}
        if self.path and self.path.exists():
            try:
                self.entries = json.loads(self.path.read_text())
            except json.JSONDecodeError:
                self.entries = {}
        self.dirty = False

    @staticmethod
    def key(photo: Path) -> str:
        st = photo.stat()
        return f"{photo.resolve()}|{st.st_size}|{int(st.st_mtime)}"

    def lookup(self, photo: Path) -> dict | None:
        """``{"box": [x1, y1, x2, y2] or None, "grayscale": bool}`` or None when not cached."""
        return self.entries.get(self.key(photo))

    def store(self, photo: Path, box: tuple | None, grayscale: bool) -> None:
        self.entries[self.key(photo)] = {"box": list(box) if box is not None else None, "grayscale": grayscale}
        self.dirty = True

    def save(self) -> None:
        if self.path and self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.entries))
            self.dirty = False


def find_sources(
    identity: str, photos: list[Path], cache: FaceBoxCache, skipped: list[str]
) -> list[SourcePhoto]:
    """Detect (or look up) the face in each photo; photos without a face are appended to ``skipped``."""
    sources = []
    for photo in photos:
        entry = cache.lookup(photo)
        if entry is None:
            rgb, grayscale = load_rgb(photo)
            cache.store(photo, detect_largest_face(rgb), grayscale)
            entry = cache.lookup(photo)
        if entry["box"] is None:
            skipped.append(str(photo))
            continue
        sources.append(SourcePhoto(identity, photo, tuple(entry["box"]), bool(entry["grayscale"])))
    return sources


def head_mask(shape: tuple[int, int], face_box: np.ndarray, softness: float) -> np.ndarray:
    """Soft elliptical head mask: covers hair, face and neck, the same proportions for every source."""
    h, w = shape
    x1, y1, x2, y2 = face_box
    fw, fh = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - 0.1 * fh
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = ((xx - cx) / (0.72 * fw)) ** 2 + ((yy - cy) / (0.98 * fh)) ** 2
    mask = (r <= 1.0).astype(np.float32)
    sigma = max(1.0, softness * fw)
    return cv2.GaussianBlur(mask, (0, 0), sigma)


def make_cutout(source: SourcePhoto, mask_softness: float = 0.06) -> Cutout:
    """Resample ``source`` so the face is :data:`CANONICAL_FACE_WIDTH` wide and cut out the head.

    Pixels the mask needs beyond the photo's edge (tight crops) are filled by reflection (a thin
    band at most; edge replication would leave streaks).
    """
    rgb, _ = load_rgb(source.path)
    x1, y1, x2, y2 = source.box
    fw, fh = x2 - x1, y2 - y1
    scale = CANONICAL_FACE_WIDTH / fw
    # crop with margins around the head (hair above, neck below), in source pixels
    cx1, cy1 = x1 - 0.85 * fw, y1 - 1.2 * fh
    cx2, cy2 = x2 + 0.85 * fw, y2 + 1.0 * fh
    out_w, out_h = int(round((cx2 - cx1) * scale)), int(round((cy2 - cy1) * scale))
    affine = np.array([[scale, 0, -cx1 * scale], [0, scale, -cy1 * scale]], dtype=np.float64)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    crop = cv2.warpAffine(rgb, affine, (out_w, out_h), flags=interp, borderMode=cv2.BORDER_REFLECT_101)
    box = np.array([(x1 - cx1) * scale, (y1 - cy1) * scale, (x2 - cx1) * scale, (y2 - cy1) * scale])
    alpha = head_mask((out_h, out_w), box, mask_softness)
    return Cutout(crop.astype(np.float32) / 255.0, alpha, box, source.grayscale)

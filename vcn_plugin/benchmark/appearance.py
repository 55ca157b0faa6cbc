"""Within-track appearance change: what makes a real track more than one still photo moving.

A face in a real shot changes while it is tracked: the actor talks and changes expression, the
head tilts, the light on the face shifts, and the pose changes enough that consecutive seconds
look like different photos of one person. The builder's ``realistic`` variation renders this
with the person's own photos, so the change is the kind a face-ID model sees in real footage:

* **morph** between two photos of the same person during the shot: both are aligned on dlib's
  68 landmarks, warped to the interpolated landmark positions by a thin-plate spline
  (:class:`scipy.interpolate.RBFInterpolator`) and cross-dissolved (the classic face morph);
* **expression**: thin-plate-spline warps that move the mouth corners (smile), the lower lip
  and chin (mouth opening, talking) and the eyebrows, driven by the same landmarks;
* **pitch** (a vertical perspective tilt, beside the renderer's yaw turn) and a **light**
  gradient across the face whose direction and strength drift during the shot.

A track's change is precomputed as :data:`N_STATES` cut-outs along the shot (all on the first
photo's canvas, with its face box and head mask, so ground truth is unchanged); the renderer
blends the two states around each frame's time. How strong each part is was calibrated with
``benchmarks/track_variation.py`` against stage-1 tracks of real clips.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from vcn_plugin.benchmark.sources import Cutout

#: cut-outs precomputed per changing track, evenly spaced over the shot
N_STATES = 6
#: dlib 68-point landmark groups
JAW, BROWS, MOUTH_CORNERS = list(range(0, 17)), list(range(17, 27)), [48, 54]
LOWER_LIP, CHIN = [55, 56, 57, 58, 59, 64, 65, 66, 67], [6, 7, 8, 9, 10]

_PREDICTOR = None


def landmarks68(cutout: Cutout) -> np.ndarray:
    """dlib's 68 landmarks (68, 2) of the cut-out's face, inside its known face box."""
    global _PREDICTOR
    import dlib

    if _PREDICTOR is None:
        import face_recognition_models as frm

        _PREDICTOR = dlib.shape_predictor(frm.pose_predictor_model_location())
    rgb = np.ascontiguousarray((np.clip(cutout.rgb, 0, 1) * 255).astype(np.uint8))
    x1, y1, x2, y2 = (int(round(v)) for v in cutout.face_box)
    shape = _PREDICTOR(rgb, dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def tps_warp(image: np.ndarray, source: np.ndarray, target: np.ndarray, step: int = 4) -> np.ndarray:
    """Warp ``image`` so the points at ``source`` move to ``target`` (thin-plate spline).

    The canvas border is pinned. The backward map (target -> source) is evaluated on a grid of
    ``step`` pixels and interpolated, which is smooth enough for a spline and 16x cheaper.
    """
    from scipy.interpolate import RBFInterpolator

    h, w = image.shape[:2]
    border = np.array([[x, y] for x in (0, w / 2, w - 1) for y in (0, h / 2, h - 1) if (x, y) != (w / 2, h / 2)])
    dst = np.vstack([target, border])
    src = np.vstack([source, border])
    spline = RBFInterpolator(dst, src - dst, kernel="thin_plate_spline", smoothing=1.0)
    gh, gw = h // step + 2, w // step + 2
    gy, gx = np.mgrid[0:gh, 0:gw].astype(np.float64) * step
    shift = spline(np.c_[gx.ravel(), gy.ravel()]).reshape(gh, gw, 2).astype(np.float32)
    full = cv2.resize(shift, ((gw - 1) * step + 1, (gh - 1) * step + 1), interpolation=cv2.INTER_LINEAR)[:h, :w]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(image, xx + full[..., 0], yy + full[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def expression_offsets(points: np.ndarray, face_width: float, smile: float, mouth_open: float, brows: float) -> np.ndarray:
    """Landmark displacements (68, 2) of an expression: each amount in about [-1, 1]."""
    d = np.zeros_like(points)
    d[MOUTH_CORNERS[0]] += [-0.08 * smile, -0.06 * smile]
    d[MOUTH_CORNERS[1]] += [0.08 * smile, -0.06 * smile]
    d[LOWER_LIP, 1] += 0.14 * max(mouth_open, 0.0)
    d[CHIN, 1] += 0.10 * max(mouth_open, 0.0)
    d[BROWS, 1] -= 0.07 * brows
    return d * face_width


@dataclass
class Change:
    """How one track changes over its shot; amounts are (start, end) pairs, eased in between."""

    #: further photos of the same person the track morphs through, in order
    partners: tuple[Cutout, ...] = ()
    #: morph position at start and end of the shot: 0 = the track's own photo, i = ``partners[i-1]``
    morph: tuple[float, float] = (0.0, 0.0)
    smile: tuple[float, float] = (0.0, 0.0)
    mouth_open: tuple[float, float, float] = (0.0, 0.0, 0.0)  #: start, middle, end (talking)
    brows: tuple[float, float] = (0.0, 0.0)


def _eased(pair, t: float) -> float:
    if len(pair) == 3:
        a, b = (pair[0], pair[1]) if t < 0.5 else (pair[1], pair[2])
        t = 2 * t if t < 0.5 else 2 * t - 1
    else:
        a, b = pair
    u = t * t * (3 - 2 * t)
    return float(a + (b - a) * u)


def _aligned(cutout: Cutout, points: np.ndarray, other: Cutout) -> tuple[np.ndarray, np.ndarray]:
    """``other``'s RGB and landmarks moved onto ``cutout``'s canvas by a landmark similarity."""
    theirs = landmarks68(other)
    matrix, _ = cv2.estimateAffinePartial2D(theirs, points)
    h, w = cutout.rgb.shape[:2]
    rgb = cv2.warpAffine(other.rgb, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return rgb, theirs @ matrix[:, :2].T + matrix[:, 2]


def track_states(cutout: Cutout, change: Change, n_states: int = N_STATES) -> list[Cutout]:
    """The cut-out at ``n_states`` evenly spaced times of the shot (all on ``cutout``'s canvas)."""
    points = landmarks68(cutout)
    face_width = float(cutout.face_box[2] - cutout.face_box[0])
    photos = [(cutout.rgb, points)] + [_aligned(cutout, points, p) for p in change.partners]
    states = []
    for t in np.linspace(0.0, 1.0, n_states):
        position = float(np.clip(_eased(change.morph, t), 0, len(photos) - 1))
        i = min(int(position), len(photos) - 2) if len(photos) > 1 else 0
        share = position - i
        base = photos[i][1] if share == 0 else (1 - share) * photos[i][1] + share * photos[i + 1][1]
        offsets = expression_offsets(base, face_width, _eased(change.smile, t), _eased(change.mouth_open, t), _eased(change.brows, t))
        target = base + offsets
        rgb = tps_warp(photos[i][0], photos[i][1], target)
        if share > 0:
            rgb = (1 - share) * rgb + share * tps_warp(photos[i + 1][0], photos[i + 1][1], target)
        states.append(replace(cutout, rgb=np.clip(rgb, 0, 1).astype(np.float32)))
    return states


def pitch_homography(face_box: np.ndarray, pitch: float) -> np.ndarray:
    """Vertical perspective tilt about the face box: the top (pitch > 0) or bottom edge shrinks."""
    x1, y1, x2, y2 = face_box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    top, bottom = 1.0 - 0.2 * pitch, 1.0 + 0.2 * pitch
    squeeze = 1.0 - 0.25 * abs(pitch)
    src = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float32)
    dst = np.array(
        [
            [cx + (x1 - cx) * top, cy + (y1 - cy) * squeeze],
            [cx + (x2 - cx) * top, cy + (y1 - cy) * squeeze],
            [cx + (x2 - cx) * bottom, cy + (y2 - cy) * squeeze],
            [cx + (x1 - cx) * bottom, cy + (y2 - cy) * squeeze],
        ],
        dtype=np.float32,
    )
    return cv2.getPerspectiveTransform(src, dst).astype(np.float64)


def light_gain(shape: tuple[int, int], face_box: np.ndarray, angle: float, strength: float) -> np.ndarray:
    """(h, w, 1) multiplicative light gradient across the face: ``1 +- strength`` at its sides."""
    h, w = shape
    x1, y1, x2, y2 = face_box
    fw = max(1.0, x2 - x1)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    along = ((xx - (x1 + x2) / 2) * np.cos(angle) + (yy - (y1 + y2) / 2) * np.sin(angle)) / (0.5 * fw)
    return (1.0 + strength * np.clip(along, -1.0, 1.0))[..., None].astype(np.float32)

"""Rendering one shot: camera, characters, occluders, per-shot colour and blur, the episode look.

Geometry. Every character is a :class:`~vcn_plugin.benchmark.sources.Cutout` mapped into the
frame by one homography per frame, ``H = camera(t) @ place(t) @ turn(t)``:

* ``turn``: a perspective warp of the cut-out about its face box that squeezes one side of the
  face and enlarges the other (a simulated out-of-plane head turn; ``yaw`` in [-1, 1]);
* ``place``: similarity (face width in pixels, in-plane rotation, face centre in the frame);
* ``camera``: zoom about the frame centre plus pan, shared by background and occluders.

Ground truth goes through the exact same ``H``: the face box's four corners are transformed and
their bounding box, clipped to the frame, is the annotation. Visibility is measured on the real
alpha layers: the fraction of the (unclipped) box that is inside the frame and not covered by
layers drawn in front of it (other characters, occluders). A face whose visible fraction is below
``min_visible`` (default 0.5) gets no box in that frame (leaving the frame, occluded).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import cv2
import numpy as np

from vcn_plugin.benchmark.appearance import light_gain, pitch_homography
from vcn_plugin.benchmark.looks import LookContext, apply_look
from vcn_plugin.benchmark.sources import Cutout


@dataclass
class Keyframes:
    """A value (d,) over shot time t in [0, 1]: piecewise linear with smoothstep easing."""

    times: list[float]
    values: list[list[float]]

    def at(self, t: float) -> np.ndarray:
        times = self.times
        values = np.asarray(self.values, dtype=np.float64)
        if t <= times[0]:
            return values[0]
        for i in range(1, len(times)):
            if t <= times[i]:
                u = (t - times[i - 1]) / max(1e-9, times[i] - times[i - 1])
                u = u * u * (3 - 2 * u)
                return values[i - 1] + (values[i] - values[i - 1]) * u
        return values[-1]

    @classmethod
    def linear(cls, start, end) -> "Keyframes":
        return cls([0.0, 1.0], [list(np.atleast_1d(start)), list(np.atleast_1d(end))])


@dataclass
class Appearance:
    """One face on screen during one shot (a principal character or an extra)."""

    label: str  # identity, or "extra"
    cutout: Cutout
    centre: Keyframes  # face centre (x, y), frame pixels, before the camera
    face_width: Keyframes  # face-box width in pixels, before the camera zoom
    rotation: Keyframes  # in-plane rotation, degrees
    yaw: Keyframes  # simulated head turn, -1..1
    torso_colour: tuple[float, float, float]
    defocus: float = 0.0  # Gaussian sigma in cut-out pixels (extras are out of focus)
    #: within-track change (see :mod:`vcn_plugin.benchmark.appearance`): the cut-out at evenly
    #: spaced times of the shot, on ``cutout``'s canvas; empty = ``cutout`` throughout (static)
    states: list[Cutout] = field(default_factory=list)
    pitch: Keyframes | None = None  # vertical head tilt, -1..1; None = none
    light: Keyframes | None = None  # (angle in radians, strength) of a light gradient; None = none


@dataclass
class Occluder:
    """A soft-edged foreground panel (pillar, shoulder) in frame pixels before the camera."""

    centre: Keyframes  # (x, y)
    size: tuple[float, float]  # (w, h)
    colour: tuple[float, float, float]


@dataclass
class ShotPlan:
    """Everything needed to render one shot deterministically."""

    first_frame: int  # 1-based episode frame number
    n_frames: int
    width: int
    height: int
    background: np.ndarray  # float RGB, larger than the frame (the camera moves over it)
    zoom: Keyframes
    pan: Keyframes  # (dx, dy) pixels
    gains: Keyframes  # RGB colour-temperature gains times brightness
    blur: tuple[str, float, float] = ("none", 0.0, 0.0)  # kind, size, angle (degrees)
    light_angle: float = 0.0
    appearances: list[Appearance] = field(default_factory=list)  # drawn in this order
    occluders: list[Occluder] = field(default_factory=list)  # drawn last
    min_visible: float = 0.5
    sensor_noise: float = 0.0  # std of per-frame Gaussian camera noise, in [0, 1] units (0 = none)


@dataclass
class FaceInFrame:
    """Ground truth of one appearance in one frame (box None when not visible enough)."""

    appearance: int
    box: tuple[float, float, float, float] | None  # x, y, w, h, clipped to the frame
    visible: float


# ------------------------------------------------------------------ transforms


def turn_homography(cutout: Cutout, yaw: float) -> np.ndarray:
    """Perspective warp about the face box: the side towards ``sign(yaw)`` grows, the other shrinks."""
    x1, y1, x2, y2 = cutout.face_box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    squeeze = 1.0 - 0.3 * abs(yaw)
    left, right = 1.0 - 0.22 * yaw, 1.0 + 0.22 * yaw
    shift = 0.12 * yaw * (x2 - x1)
    src = cutout.corners.astype(np.float32)
    dst = np.array(
        [
            [cx + (x1 - cx) * squeeze + shift, cy + (y1 - cy) * left],
            [cx + (x2 - cx) * squeeze + shift, cy + (y1 - cy) * right],
            [cx + (x2 - cx) * squeeze + shift, cy + (y2 - cy) * right],
            [cx + (x1 - cx) * squeeze + shift, cy + (y2 - cy) * left],
        ],
        dtype=np.float32,
    )
    return cv2.getPerspectiveTransform(src, dst).astype(np.float64)


def place_matrix(face_centre_src, face_width_src: float, centre, width: float, rotation_deg: float) -> np.ndarray:
    """Similarity taking the cut-out's face centre to ``centre`` with face width ``width``."""
    s = width / face_width_src
    a = np.deg2rad(rotation_deg)
    rs = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m = np.eye(3)
    m[:2, :2] = rs
    m[:2, 2] = np.asarray(centre) - rs @ np.asarray(face_centre_src)
    return m


def camera_matrix(width: int, height: int, zoom: float, pan) -> np.ndarray:
    """Zoom about the frame centre, then pan (pixels)."""
    c = np.array([width / 2, height / 2])
    m = np.eye(3)
    m[:2, :2] *= zoom
    m[:2, 2] = c + np.asarray(pan) - zoom * c
    return m


def transform_points(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ h.T
    return p[:, :2] / p[:, 2:3]


# ------------------------------------------------------------------ layers


@dataclass
class _Layer:
    """A warped layer restricted to its region of interest in the frame (premultiplied RGB)."""

    x0: int
    y0: int
    rgb: np.ndarray  # colour times alpha
    alpha: np.ndarray


def _warp_layer(rgba: np.ndarray, h: np.ndarray, width: int, height: int) -> _Layer | None:
    """Warp a premultiplied RGBA image by ``h`` into the frame, only over its bounding box."""
    hh, ww = rgba.shape[:2]
    corners = transform_points(h, np.array([[0, 0], [ww, 0], [ww, hh], [0, hh]], dtype=np.float64))
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 <= x0 or y1 <= y0:
        return None
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], dtype=np.float64) @ h
    out = cv2.warpPerspective(rgba, shift, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return _Layer(x0, y0, out[..., :3], out[..., 3])


def _composite(frame: np.ndarray, layer: _Layer) -> None:
    h, w = layer.alpha.shape
    region = frame[layer.y0 : layer.y0 + h, layer.x0 : layer.x0 + w]
    # OpenCV writes into the frame's view in place, ~10x faster than numpy broadcasting here
    cv2.multiply(region, cv2.merge([1.0 - layer.alpha] * 3), dst=region)
    cv2.add(region, layer.rgb, dst=region)


def dress_cutout(cutout: Cutout, torso_colour, defocus: float, max_face_width: float) -> tuple[np.ndarray, Cutout]:
    """Cut-out over a plain torso (the same synthetic clothing shape for every source), resized so
    its face is no wider than needed in this shot and cropped to its visible part; returns
    (premultiplied RGBA, the matching cut-out)."""
    scale = min(1.0, 1.3 * max_face_width / (cutout.face_box[2] - cutout.face_box[0]))
    h, w = cutout.alpha.shape
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    sx, sy = size[0] / w, size[1] / h
    rgb = cv2.resize(cutout.rgb, size, interpolation=cv2.INTER_AREA)
    head = cv2.resize(cutout.alpha, size, interpolation=cv2.INTER_AREA)
    box = cutout.face_box * np.array([sx, sy, sx, sy])
    x1, y1, x2, y2 = box
    fw, fh = x2 - x1, y2 - y1
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    torso = (((xx - (x1 + x2) / 2) / (1.2 * fw)) ** 2 + ((yy - (y2 + 1.25 * fh)) / (1.0 * fh)) ** 2 <= 1).astype(np.float32)
    torso = cv2.GaussianBlur(torso, (0, 0), max(1.0, 0.05 * fw))
    shading = (0.75 + 0.25 * np.clip((yy - y2) / (2 * fh), 0, 1))[..., None]
    clothes = np.asarray(torso_colour, dtype=np.float32) * (1.1 - 0.4 * (shading - 0.75))
    out_rgb = clothes * (1 - head[..., None]) + rgb * head[..., None]
    out_alpha = np.clip(torso + head - torso * head, 0, 1)
    rgba = np.dstack([out_rgb * out_alpha[..., None], out_alpha]).astype(np.float32)
    if defocus > 0:
        rgba = cv2.GaussianBlur(rgba, (0, 0), defocus * scale)
    ys, xs = np.nonzero(rgba[..., 3] > 1e-3)
    top, left = int(ys.min()), int(xs.min())
    rgba = np.ascontiguousarray(rgba[top : ys.max() + 1, left : xs.max() + 1])
    box = box - np.array([left, top, left, top])
    return rgba, Cutout(rgb[top : ys.max() + 1, left : xs.max() + 1], head[top : ys.max() + 1, left : xs.max() + 1], box, cutout.grayscale_source)


def _occluder_layer(occ: Occluder, cam: np.ndarray, t: float, width: int, height: int) -> _Layer | None:
    cx, cy = occ.centre.at(t)
    w, h = occ.size
    corners = transform_points(cam, np.array([[cx - w / 2, cy - h / 2], [cx + w / 2, cy + h / 2]]))
    (x0, y0), (x1, y1) = corners
    pad = 0.1 * (x1 - x0)
    ix0, iy0 = max(0, int(x0 - pad)), max(0, int(y0 - pad))
    ix1, iy1 = min(width, int(np.ceil(x1 + pad))), min(height, int(np.ceil(y1 + pad)))
    if ix1 <= ix0 or iy1 <= iy0:
        return None
    yy, xx = np.mgrid[iy0:iy1, ix0:ix1].astype(np.float32)
    soft = max(1.0, pad / 2)
    ax = np.clip((xx - x0) / soft + 0.5, 0, 1) * np.clip((x1 - xx) / soft + 0.5, 0, 1)
    ay = np.clip((yy - y0) / soft + 0.5, 0, 1) * np.clip((y1 - yy) / soft + 0.5, 0, 1)
    alpha = (ax * ay).astype(np.float32)
    shade = (0.8 + 0.2 * (xx - x0) / max(1.0, x1 - x0))[..., None]
    rgb = (np.asarray(occ.colour, dtype=np.float32) * shade * alpha[..., None]).astype(np.float32)
    return _Layer(ix0, iy0, rgb, alpha)


# ------------------------------------------------------------------ per-frame effects


def _blur(frame: np.ndarray, kind: str, size: float, angle: float) -> np.ndarray:
    if kind == "gaussian":
        return cv2.GaussianBlur(frame, (0, 0), size)
    if kind == "motion":
        length = max(3, int(round(size)) | 1)
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        return cv2.filter2D(frame, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)
    return frame


def _box_stats(corners: np.ndarray, width: int, height: int):
    x0, y0 = corners.min(axis=0)
    x1, y1 = corners.max(axis=0)
    area = max(1e-6, (x1 - x0) * (y1 - y0))
    cx0, cy0, cx1, cy1 = max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)
    return (x0, y0, x1, y1), (cx0, cy0, cx1, cy1), area


def render_shot(
    plan: ShotPlan, look: str = "none", severity: int = 0, grain_seed: tuple[int, ...] = (0,)
) -> Iterator[tuple[np.ndarray, list[FaceInFrame]]]:
    """Yield (uint8 RGB frame, ground truth per appearance) for every frame of the shot."""
    W, H = plan.width, plan.height
    bg_h, bg_w = plan.background.shape[:2]
    to_frame = np.array([[1, 0, -(bg_w - W) / 2], [0, 1, -(bg_h - H) / 2], [0, 0, 1]], dtype=np.float64)
    max_width = max(max(v[0] for v in a.face_width.values) for a in plan.appearances) if plan.appearances else 1.0
    zoom_max = max(v[0] for v in plan.zoom.values)
    dressed = [_dress(a, max_width * zoom_max) for a in plan.appearances]
    for i in range(plan.n_frames):
        t = i / max(1, plan.n_frames - 1)
        cam = camera_matrix(W, H, float(plan.zoom.at(t)[0]), plan.pan.at(t))
        frame = cv2.warpAffine(plan.background, (cam @ to_frame)[:2], (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frame = frame.astype(np.float32, copy=False)
        faces: list[dict] = []
        for idx, (app, (states, cut)) in enumerate(zip(plan.appearances, dressed)):
            rgba = _changed(app, states, cut, t)
            fx1, fy1, fx2, fy2 = cut.face_box
            h = cam @ place_matrix(
                ((fx1 + fx2) / 2, (fy1 + fy2) / 2), fx2 - fx1, app.centre.at(t), float(app.face_width.at(t)[0]), float(app.rotation.at(t)[0])
            ) @ turn_homography(cut, float(app.yaw.at(t)[0]))
            if app.pitch is not None:
                h = h @ pitch_homography(cut.face_box, float(app.pitch.at(t)[0]))
            layer = _warp_layer(rgba, h, W, H)
            _cover(faces, layer)
            if layer is not None:
                _composite(frame, layer)
            faces.append(_new_face(idx, transform_points(h, cut.corners), W, H))
        for occ in plan.occluders:
            layer = _occluder_layer(occ, cam, t, W, H)
            _cover(faces, layer)
            if layer is not None:
                _composite(frame, layer)
        frame *= plan.gains.at(t).astype(np.float32) * np.float32(255.0)
        frame = _blur(frame, *plan.blur)
        if plan.sensor_noise > 0:
            noise = np.random.default_rng(tuple(grain_seed) + (plan.first_frame + i, 7)).standard_normal(frame.shape, dtype=np.float32)
            frame += noise * np.float32(255.0 * plan.sensor_noise)
        if look != "none" and severity > 0:
            boxes = [f["full"] for f in faces if f["visible_px"] is not None]
            ctx = LookContext(seed=tuple(grain_seed) + (plan.first_frame + i,), light_angle=plan.light_angle, face_boxes=boxes)
            frame = apply_look(np.clip(frame * np.float32(1 / 255), 0, 1), look, severity, ctx) * np.float32(255.0)
        out = cv2.convertScaleAbs(np.maximum(frame, 0, out=frame))  # rounds and saturates to uint8
        yield out, [_finish_face(f, plan.min_visible) for f in faces]


def _dress(app: Appearance, max_face_width: float) -> tuple[list[np.ndarray], Cutout]:
    """Dressed RGBA of every state of ``app`` (one for a static track) and the shared cut-out geometry."""
    rgba, cut = dress_cutout(app.cutout, app.torso_colour, app.defocus, max_face_width)
    if not app.states:
        return [rgba], cut
    # states share the cut-out's canvas and head mask, so they dress to the same crop and box
    return [dress_cutout(s, app.torso_colour, app.defocus, max_face_width)[0] for s in app.states], cut


def _changed(app: Appearance, states: list[np.ndarray], cut: Cutout, t: float) -> np.ndarray:
    """The appearance's RGBA at shot time ``t``: adjacent states blended, then the light gradient."""
    if len(states) == 1:
        rgba = states[0]
    else:
        pos = t * (len(states) - 1)
        i = min(int(pos), len(states) - 2)
        w = np.float32(pos - i)
        rgba = states[i] * (1 - w) + states[i + 1] * w
    if app.light is not None:
        angle, strength = app.light.at(t)
        rgba = rgba.copy()
        rgba[..., :3] *= light_gain(rgba.shape[:2], cut.face_box, float(angle), float(strength))
    return rgba


def _new_face(idx: int, corners: np.ndarray, width: int, height: int) -> dict:
    full, clipped, area = _box_stats(corners, width, height)
    ix0, iy0 = int(np.floor(clipped[0])), int(np.floor(clipped[1]))
    ix1, iy1 = int(np.ceil(clipped[2])), int(np.ceil(clipped[3]))
    face = {"idx": idx, "full": full, "clipped": clipped, "area": area, "visible_px": None, "origin": (ix0, iy0)}
    if ix1 > ix0 and iy1 > iy0:
        # fraction of each pixel covered by the clipped box (exact at the box's fractional edges)
        xs = np.clip(np.minimum(np.arange(ix0, ix1) + 1, clipped[2]) - np.maximum(np.arange(ix0, ix1), clipped[0]), 0, 1)
        ys = np.clip(np.minimum(np.arange(iy0, iy1) + 1, clipped[3]) - np.maximum(np.arange(iy0, iy1), clipped[1]), 0, 1)
        face["visible_px"] = np.outer(ys, xs).astype(np.float32)
    return face


def _cover(faces: list[dict], layer: _Layer | None) -> None:
    """Multiply the visibility of faces already drawn by (1 - alpha) of a layer drawn in front."""
    if layer is None:
        return
    lh, lw = layer.alpha.shape
    for f in faces:
        vis = f["visible_px"]
        if vis is None:
            continue
        ox, oy = f["origin"]
        x0, y0 = max(ox, layer.x0), max(oy, layer.y0)
        x1, y1 = min(ox + vis.shape[1], layer.x0 + lw), min(oy + vis.shape[0], layer.y0 + lh)
        if x1 > x0 and y1 > y0:
            vis[y0 - oy : y1 - oy, x0 - ox : x1 - ox] *= 1.0 - layer.alpha[y0 - layer.y0 : y1 - layer.y0, x0 - layer.x0 : x1 - layer.x0]


def _finish_face(f: dict, min_visible: float) -> FaceInFrame:
    if f["visible_px"] is None:
        return FaceInFrame(f["idx"], None, 0.0)
    visible = float(f["visible_px"].sum() / f["area"])
    x0, y0, x1, y1 = f["clipped"]
    if visible < min_visible:
        return FaceInFrame(f["idx"], None, visible)
    return FaceInFrame(f["idx"], (float(x0), float(y0), float(x1 - x0), float(y1 - y0)), visible)

"""The FiftyOne schema of vcn: every field name and type, defined once.

Video samples
    ``shots``        fo.TemporalDetections, one ``"shot"`` per shot (support = [first, last] frame)
    ``gt_shots``     fo.TemporalDetections, ground-truth shots of a benchmark
    ``vcn_video``    fo.DynamicEmbeddedDocument: the video's stage-1 record, written with its labels
                     (statistics, ``detector``, ``landmark_format``, ``stage1_id`` of that pass);
                     None while stage 1 has not finished the video
    ``vcn_models``   dict: the video's finetuned checkpoint per finetuning run key (per-video runs)

Frames
    ``faces``        fo.Detections: one per face. ``label`` is "face" until identities exist, then
                     the identity ("person_01", a user's name, or "Unknown"); ``index`` is the track
                     id (unique within the video); ``confidence`` is the detector score; attributes
                     ``quality`` (float in [0, 1]), ``shot`` (int, 0-based), ``landmarks`` (5 [x, y]
                     pairs, relative coordinates), ``interpolated`` (bool, filled by the tracker);
                     ``serfiq`` (float in [0, 1], SER-FIQ quality of the faces sampled for
                     clustering, written when the backbone's quality is SER-FIQ).
    ``gt_faces``     fo.Detections: ground truth; ``label`` = identity, ``index`` = ground-truth track id

Track records live in a linked image dataset (see :mod:`vcn_plugin.fo.track_records`).
"""
from __future__ import annotations

import fiftyone as fo

from vcn_plugin.core.types import UNKNOWN  # noqa: F401  (re-exported: the label of Unknown tracks)

SHOTS = "shots"
GT_SHOTS = "gt_shots"
VIDEO_STATS = "vcn_video"
#: per-video finetuned models: ``{run key: {"checkpoint", "stage1_id", "backbone"}}`` (a dict field)
VIDEO_MODELS = "vcn_models"
FACES = "faces"
GT_FACES = "gt_faces"

SHOT_LABEL = "shot"
FACE_LABEL = "face"
#: a user's mark for a detection that is not a face: left out of clustering, scored as Unknown
NOT_FACE = "not_face"

ATTR_QUALITY = "quality"
ATTR_SHOT = "shot"
ATTR_LANDMARKS = "landmarks"
ATTR_INTERPOLATED = "interpolated"
#: SER-FIQ quality of the sampled faces (only written for backbones whose quality is SER-FIQ)
ATTR_SERFIQ = "serfiq"

#: dynamic attributes of ``frames.faces.detections`` and their FiftyOne field types
FACE_ATTRIBUTES: dict[str, type[fo.Field]] = {
    ATTR_QUALITY: fo.FloatField,
    ATTR_SHOT: fo.IntField,
    ATTR_INTERPOLATED: fo.BooleanField,
}

#: attribute of ``frames.gt_faces.detections``: True for unlabelled extras (annotation ``distractors``)
ATTR_DISTRACTOR = "distractor"
#: identity given to distractor tracks by the benchmark builder
DISTRACTOR_IDENTITY = "extra"

# --- the track-record dataset (one constant per line, like the frame names above: the same shape on purpose)
TRACKS_SUFFIX = "-vcn-tracks"
#: ``info`` key of the track dataset naming its video dataset
INFO_VIDEO_DATASET = "vcn_video_dataset"
TRACK_VIDEO_ID = "video_id"
TRACK_VIDEO_PATH = "video_path"
TRACK_INDEX = "track"
TRACK_SHOT = "shot"
TRACK_FIRST_FRAME = "first_frame"
TRACK_LAST_FRAME = "last_frame"
TRACK_NUM_FACES = "num_faces"
TRACK_QUALITY = "quality"
TRACK_LOW_QUALITY = "low_quality"
TRACK_IDENTITY = "identity"
TRACK_GT_IDENTITY = "gt_identity"
TRACK_EMBEDDING = "embedding"
#: second-best minus best cluster distance of a track (small = the clustering was unsure)
TRACK_MARGIN = "margin"


def label_path(field: str) -> str:
    """The label value of a Classification field, e.g. ``identity.label``."""
    return f"{field}.label"


# --- runs, info keys and brain keys (on the video dataset)
#: FiftyOne run keys written by each stage (defaults; finetune/cluster/eval keys may be chosen)
STAGE1_RUN = "vcn_stage1"
FINETUNE_RUN = "vcn_finetune"
CLUSTER_RUN = "vcn_cluster"
EVAL_KEY = "vcn_eval"
#: the run type ("method") of each vcn run; a run key holds one type for good
RUN_TYPES = ("stage1", "finetune", "cluster", "evaluation")
#: keys no user-chosen run may take: each belongs to one stage
RESERVED_RUNS = {STAGE1_RUN: "stage1", FINETUNE_RUN: "finetune", CLUSTER_RUN: "cluster", EVAL_KEY: "evaluation"}
#: string attributes of the ``vcn_video`` record (the rest are numbers)
VIDEO_RECORD_STRINGS = ("detector", "landmark_format", "stage1_id", "finished")
#: brain key of the UMAP of track embeddings, on the track dataset
UMAP_BRAIN_KEY = "vcn_tracks_umap"
#: the plugin's name (``fiftyone.yml``): its operators' URIs start with it
PLUGIN_NAME = "@vcn/videoclusternet"
#: ``info`` key of the video dataset where concurrent operations claim one-time work (``claim_once``)
INFO_CLAIMS = "vcn_claims"
#: ``info`` key of the video dataset holding the correction log
INFO_CORRECTIONS = "vcn_corrections"


def frame_path(field: str) -> str:
    return f"frames.{field}"


def _declare(dataset: fo.Dataset, path: str, ftype: type[fo.Field], frames: bool = False, **kwargs) -> None:
    """Add a field unless it exists; another worker declaring it at the same moment is fine."""
    has, add = (dataset.has_frame_field, dataset.add_frame_field) if frames else (
        dataset.has_sample_field, dataset.add_sample_field)
    if has(path):
        return
    try:
        add(path, ftype, **kwargs)
    except ValueError:
        dataset.reload()
        if not has(path):
            raise


def declare_face_field(dataset: fo.Dataset, field: str = FACES) -> None:
    """Declare ``frames.<field>`` and its attributes so the App sidebar can filter on them."""
    _declare(dataset, field, fo.EmbeddedDocumentField, frames=True, embedded_doc_type=fo.Detections)
    for name, ftype in FACE_ATTRIBUTES.items():
        _declare(dataset, f"{field}.detections.{name}", ftype, frames=True)
    _declare(dataset, f"{field}.detections.{ATTR_LANDMARKS}", fo.ListField, frames=True, subfield=fo.ListField)


def declare_shot_field(dataset: fo.Dataset, field: str = SHOTS) -> None:
    _declare(dataset, field, fo.EmbeddedDocumentField, embedded_doc_type=fo.TemporalDetections)


def declare_video_record(dataset: fo.Dataset, numbers: dict[str, type[fo.Field]]) -> None:
    """Declare ``vcn_video`` with its string attributes and the number attributes ``numbers``."""
    _declare(dataset, VIDEO_STATS, fo.EmbeddedDocumentField, embedded_doc_type=fo.DynamicEmbeddedDocument)
    for name in VIDEO_RECORD_STRINGS:
        _declare(dataset, f"{VIDEO_STATS}.{name}", fo.StringField)
    for name, ftype in numbers.items():
        _declare(dataset, f"{VIDEO_STATS}.{name}", ftype)


def declare_dict_field(dataset: fo.Dataset, field: str) -> None:
    _declare(dataset, field, fo.DictField)


def require_video_dataset(dataset: fo.Dataset) -> None:
    if len(dataset) == 0:
        raise ValueError(f"dataset '{dataset.name}' holds no videos yet: import some first "
                         f"(vcn import PATH --dataset {dataset.name})")
    if dataset.media_type != "video":
        raise ValueError(
            f"dataset '{dataset.name}' holds {dataset.media_type} samples; vcn works on video datasets"
        )

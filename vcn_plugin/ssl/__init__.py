"""Self-supervised finetuning of a face-ID backbone on one video's tracks (VideoClusterNet).

DINO-style self-distillation (Caron et al., ICCV 2021) on positive pairs only:
two faces of one track, or faces of two tracks matched across shots (Kamboj et al.,
VideoClusterNet, ECCV 2024, arXiv:2407.12214, match by per-track Gaussians; by default vcn
pairs the tracks that two clusterings of the current teacher agree on, see
:mod:`vcn_plugin.ssl.cluster_matching`).
"""
from vcn_plugin.core.student_factors import DEFAULT_PREDICTOR, PREDICTORS
from vcn_plugin.ssl.augment import AugmentConfig, augment_chips
from vcn_plugin.ssl.config import FinetuneConfig, resolve_device
from vcn_plugin.ssl.head import DEFAULT_NUM_PROTOTYPES, DINOHead
from vcn_plugin.ssl.loss import DINOLoss
from vcn_plugin.ssl.model import SSLModel
from vcn_plugin.ssl.track_gaussians import MatchResult, TrackGaussian, fit_track_gaussian, match_tracks
from vcn_plugin.ssl.trainer import FinetuneResult, ProgressCallback, TrackChips, finetune

__all__ = [
    "AugmentConfig",
    "DEFAULT_NUM_PROTOTYPES",
    "DEFAULT_PREDICTOR",
    "DINOHead",
    "DINOLoss",
    "FinetuneConfig",
    "FinetuneResult",
    "MatchResult",
    "PREDICTORS",
    "ProgressCallback",
    "SSLModel",
    "TrackChips",
    "TrackGaussian",
    "augment_chips",
    "finetune",
    "fit_track_gaussian",
    "match_tracks",
    "resolve_device",
]

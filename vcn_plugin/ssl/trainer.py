"""The finetuning loop: DINO self-distillation on track positives with coarse matching rounds.

Schedule (VideoClusterNet, arXiv 2407.12214, with DINO's optimisation defaults):

1. stage ``"head"``: the backbone is frozen but for its last layer, and the head learns
   from pairs of two faces of one track. Stage ``"cache"`` first runs the frozen backbone
   once on ``cache_views`` views of every chip (the chip itself, then augmentations) and
   keeps its features (the last layer's input); the steps then run only the last layer and
   the heads. The teacher's last layer follows the student's by EMA (at ``last_layer_lr`` 0,
   the paper's schedule, the cache holds embeddings and the whole backbone waits for stage 2).
2. ``rounds`` times: stage ``"match"`` pairs tracks across shots on the current teacher
   (``FinetuneConfig.matching``; by default the pairs that the loss clustering and the backbone
   cosine's clustering both make, :mod:`vcn_plugin.ssl.cluster_matching`; the paper's per-track
   Gaussians are :mod:`vcn_plugin.ssl.track_gaussians`); stage ``"joint"`` then trains backbone and
   head together (backbone at a 10x lower learning rate) on pairs from one
   track or from two matched tracks, with fresh augmentations every step.

Every step: loss on both directions of each pair, AdamW, global gradient
clipping, the prototypes frozen during the first epoch, teacher EMA with
momentum rising from 0.996 to 1 on a cosine over all steps, center update. With
``negative_weight`` > 0 (a study point, off by default) the head-only steps add the cannot-link
ranking term of :mod:`vcn_plugin.ssl.negative_loss`.
The backbones stay in eval mode (batch-norm statistics frozen): batches are small.

Tracks with a single chip are accepted: their pair is two augmentations of that
chip (as DINO's views of one image). At least two tracks are required.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from vcn_plugin.backbones.base import Backbone
from vcn_plugin.clustering import StudentFactors, cluster_tracks
from vcn_plugin.ssl.augment import augment_chips
from vcn_plugin.ssl.cluster_matching import meet_of_partitions, pairs_of_clusters
from vcn_plugin.ssl.config import FinetuneConfig, resolve_device
from vcn_plugin.ssl.health import teacher_health
from vcn_plugin.ssl.loss import DINOLoss, teacher_probabilities
from vcn_plugin.ssl.model import SSLModel, validate_chips
from vcn_plugin.ssl.mutual_neighbours import match_mutual_neighbours
from vcn_plugin.ssl.negative_loss import negative_ranking_loss
from vcn_plugin.ssl.track_gaussians import drop_conflicting_matches, match_tracks, union_of_matches

logger = logging.getLogger(__name__)

#: ``[(track_key, chips uint8 (n, H, W, 3)), ...]``
TrackChips = Sequence[tuple[Hashable, np.ndarray]]
#: ``progress(stage, step, total, info)``; stages: "cache", "head", "match", "joint", "health"
#: (the last: embedding the chips once more with the final teacher, for its health numbers).
ProgressCallback = Callable[[str, int, int, dict[str, Any]], None]


@dataclass
class FinetuneResult:
    """What a finetuning run did; :meth:`to_dict` is JSON-serialisable."""

    device: str
    num_tracks: int
    num_chips: int
    loss_curve: list[float] = field(default_factory=list)  # one value per training step, in order
    stage_of_step: list[str] = field(default_factory=list)  # "head" or "joint" for each loss value
    match_counts: list[int] = field(default_factory=list)  # matched track pairs per round
    match_pairs: list[list[tuple]] = field(default_factory=list)  # the matched track-key pairs of each round
    #: the teacher's health (:class:`vcn_plugin.ssl.health.TeacherHealth`) after the head stage
    #: and after each joint round, each with ``after``: "head", "joint 1", ...
    health: list[dict[str, Any]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_steps: dict[str, int] = field(default_factory=dict)

    @property
    def steps_per_second(self) -> dict[str, float]:
        return {
            stage: self.stage_steps[stage] / seconds
            for stage, seconds in self.stage_seconds.items()
            if stage in self.stage_steps and seconds > 0
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steps_per_second": self.steps_per_second}


@dataclass
class _Data:
    """All chips in one array, with the track of each chip."""

    keys: list[Hashable]
    chips: np.ndarray  # (N, H, W, 3) uint8
    track_of_chip: np.ndarray  # (N,) int
    chips_of_track: list[np.ndarray]  # chip indices per track


def finetune(
    backbone: Backbone,
    tracks: TrackChips,
    cannot_link: Sequence[tuple[Hashable, Hashable]] = (),
    config: FinetuneConfig | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[SSLModel, FinetuneResult]:
    """Finetune ``backbone`` + a new DINO head on the tracks of one video (or a series).

    Args:
        backbone: the pretrained backbone; it is copied, never modified.
        tracks: ``(track_key, chips)`` per track; chips are uint8 RGB
            (n >= 1, S, S, 3) aligned for the backbone (S = ``backbone.chip_size``).
            Keys are any hashable; to finetune once over a series, pass the
            tracks of all its videos with keys such as ``(video_id, track_id)``.
        cannot_link: track key pairs known to be different people (e.g. seen in
            one frame); coarse matching never pairs them.
        config: hyperparameters (defaults: :class:`FinetuneConfig`).
        progress: optional ``progress(stage, step, total, info)``.

    Returns:
        The trained :class:`SSLModel` (on the training device) and a :class:`FinetuneResult`.
    """
    config = config or FinetuneConfig()
    data = _collect(tracks, backbone)
    keys = set(data.keys)
    for pair in cannot_link:
        if len(tuple(pair)) != 2 or any(k not in keys for k in pair):
            raise ValueError(f"cannot_link entry {pair!r} is not a pair of track keys given in tracks")
    device = resolve_device(config.device)
    return _Trainer(backbone, data, list(cannot_link), config, device, progress).run()


def cosine_momentum(step: int, total_steps: int, base: float) -> float:
    """DINO's teacher momentum: ``1 - (1 - base) (cos(pi step / total) + 1) / 2``."""
    if total_steps <= 0:
        return base
    return 1.0 - (1.0 - base) * (math.cos(math.pi * min(step, total_steps) / total_steps) + 1.0) / 2.0


def lr_factor(step: int, total_steps: int, warmup_fraction: float) -> float:
    """Linear warmup over ``warmup_fraction`` of the stage, then cosine decay to 0."""
    warmup = int(warmup_fraction * total_steps)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    span = max(1, total_steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / span))


@torch.no_grad()
def ema_update(
    teacher: nn.Module | Iterable[nn.Parameter], student: nn.Module | Iterable[nn.Parameter], momentum: float
) -> None:
    """``teacher <- momentum * teacher + (1 - momentum) * student``, parameter by parameter
    (of two modules, or of two parameter lists in the same order)."""
    teacher = teacher.parameters() if isinstance(teacher, nn.Module) else teacher
    student = student.parameters() if isinstance(student, nn.Module) else student
    for t, s in zip(teacher, student, strict=True):
        t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)


def _collect(tracks: TrackChips, backbone: Backbone) -> _Data:
    tracks = list(tracks)
    if len(tracks) < 2:
        raise ValueError(
            f"finetuning needs at least 2 tracks, got {len(tracks)}: with fewer there is nothing to tell apart; "
            "run detection and tracking first, or finetune over several videos of a series"
        )
    keys: list[Hashable] = []
    parts: list[np.ndarray] = []
    for key, chips in tracks:
        if key in keys:
            raise ValueError(f"track key {key!r} appears twice; keys must be unique")
        validate_chips(chips, backbone, f"chips of track {key!r}")
        if len(chips) == 0:
            raise ValueError(f"track {key!r} has no chips; drop it or extract its faces")
        keys.append(key)
        parts.append(chips)
    sizes = np.array([len(p) for p in parts])
    starts = np.concatenate([[0], np.cumsum(sizes)])
    return _Data(
        keys=keys,
        chips=np.ascontiguousarray(np.concatenate(parts)),
        track_of_chip=np.repeat(np.arange(len(parts)), sizes),
        chips_of_track=[np.arange(starts[i], starts[i + 1]) for i in range(len(parts))],
    )


class _Trainer:
    def __init__(
        self,
        backbone: Backbone,
        data: _Data,
        cannot_link: list[tuple[Hashable, Hashable]],
        config: FinetuneConfig,
        device: torch.device,
        progress: ProgressCallback | None,
    ) -> None:
        self.data, self.cannot_link, self.config, self.device = data, cannot_link, config, device
        #: the cached views hold the backbone's features (the last layer's input), not its embeddings
        self.cache_features = config.last_layer_lr > 0
        self.progress = progress or (lambda stage, step, total, info: None)
        torch.manual_seed(config.seed)
        self.pair_rng = np.random.default_rng(config.seed)
        self.augment_rng = torch.Generator().manual_seed(config.seed + 1)
        init_rng = torch.Generator().manual_seed(config.seed + 2)
        self.model = SSLModel.from_backbone(backbone, config, generator=init_rng).to(device)
        self.model.eval()
        self.loss = DINOLoss(config.num_prototypes, config.teacher_temp, config.student_temp, config.center_momentum)
        self.loss.to(device)
        self.loss.center.copy_(self.model.center)
        for module in (self.model.teacher_backbone, self.model.teacher_head):
            module.requires_grad_(False)
        num_chips = len(data.chips)
        self.steps_per_epoch = config.steps_per_epoch(num_chips)
        self.head_steps = config.head_steps(num_chips)
        self.joint_steps = config.joint_steps_per_round(num_chips)
        final_steps = config.final_head_steps if config.rounds else 0
        self.total_steps = self.head_steps + config.rounds * (config.round_head_steps + self.joint_steps) + final_steps
        self.step = 0
        self.optimizer = self._make_optimizer()
        self.scaler, self.autocast_dtype = self._mixed_precision()
        self.matches: list[list[int]] = [[] for _ in data.keys]
        index = {key: i for i, key in enumerate(data.keys)}
        #: per track, the tracks it cannot be (seen in one frame): the negatives of ``negative_weight``
        self.negatives: list[list[int]] = [[] for _ in data.keys]
        for a, b in cannot_link:
            self.negatives[index[a]].append(index[b])
            self.negatives[index[b]].append(index[a])
        #: the cannot-link pairs as (m, 2) track rows, for the clusterings of coarse matching
        self.cannot_rows = np.array([[index[a], index[b]] for a, b in cannot_link], np.int64).reshape(-1, 2)
        self.result = FinetuneResult(device=str(device), num_tracks=len(data.keys), num_chips=num_chips)

    def run(self) -> tuple[SSLModel, FinetuneResult]:
        teacher = self.model.teacher_backbone
        views = self._timed("cache", self._cache_views)
        if self.config.head_input == "centred":
            frozen = self._embeddings(teacher, views[:1])[0].to(self.device)
            for head in (self.model.student_head, self.model.teacher_head):
                head.set_input_normalisation(frozen)
        if self.config.prototype_init == "tracks":
            self._timed("head", lambda: self._init_prototypes_from_tracks(self._embeddings(teacher, views[:1])[0]))
        self._timed("head", lambda: self._train_head(views, self.head_steps))
        self._timed("health", lambda: self._record_health("head", views))
        for round_index in range(self.config.rounds):
            # until the joint stage moves it, the teacher backbone is the frozen one that made the views
            if round_index > 0:
                views = self._timed("match", lambda: self._embed_views(teacher))
                self._timed("health", lambda: self._record_health(f"joint {round_index}", views))
            self._timed("match", lambda: self._match(round_index, self._embeddings(teacher, views).cpu().numpy()))
            if self.config.round_head_steps:
                self._timed("head", lambda: self._train_head(views, self.config.round_head_steps, round_index + 1))
            self._timed("joint", lambda: self._train_joint(round_index))
            if self.config.teacher_backbone == "round":
                self.model.teacher_backbone.load_state_dict(self.model.student_backbone.state_dict())
        if self.config.rounds and self.config.final_head_steps:
            views = self._timed("match", lambda: self._embed_views(teacher))
            self._timed("head", lambda: self._train_head(views, self.config.final_head_steps, self.config.rounds))
        if self.config.rounds:
            final = self._timed("health", lambda: self._embed_views(teacher, "health", 1))
            self._timed("health", lambda: self._record_health(f"joint {self.config.rounds}", final))
        self.model.center.copy_(self.loss.center)
        logger.info("finetuning done: %s", self.result.to_dict())
        return self.model, self.result

    def _timed(self, stage: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = fn()
        self.result.stage_seconds[stage] = self.result.stage_seconds.get(stage, 0.0) + time.perf_counter() - start
        return value

    # ---- optimisation -------------------------------------------------------------------------
    def _make_optimizer(self) -> torch.optim.Optimizer:
        """AdamW; each group's peak learning rate per stage ("head", "joint") in ``stage_lr``."""
        config, head, backbone = self.config, self.model.student_head, self.model.student_backbone
        decay = [p for p in head.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in head.parameters() if p.requires_grad and p.ndim < 2]
        last = backbone.last_layer_parameters()
        last_ids = {id(p) for p in last}
        body = [p for p in backbone.parameters() if id(p) not in last_ids]
        head_lr = {"head": config.head_lr, "joint": config.head_lr}
        groups = [
            {"params": decay, "weight_decay": config.weight_decay, "stage_lr": head_lr},
            {"params": no_decay, "weight_decay": 0.0, "stage_lr": head_lr},
            {"params": body, "weight_decay": config.weight_decay,
             "stage_lr": {"head": 0.0, "joint": config.backbone_lr}},
            {"params": last, "weight_decay": config.weight_decay,
             "stage_lr": {"head": config.last_layer_lr, "joint": config.backbone_lr}},
        ]
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.head_lr)

    def _mixed_precision(self) -> tuple[torch.amp.GradScaler | None, torch.dtype | None]:
        if self.device.type != "cuda":
            return None, None
        if torch.cuda.is_bf16_supported():
            return None, torch.bfloat16
        return torch.amp.GradScaler("cuda"), torch.float16

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.autocast_dtype)

    def _optimise(self, stage: str, stage_step: int, stage_total: int, embed: Callable[[], tuple]) -> float:
        factor = lr_factor(stage_step, stage_total, self.config.warmup_fraction)
        for group in self.optimizer.param_groups:
            group["lr"] = group["stage_lr"][stage] * factor
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            student_a, student_b, teacher_a, teacher_b, *negatives = embed()
        loss = self.loss(student_a, student_b, teacher_a, teacher_b)
        if negatives:  # (rows, student, teacher) of the cannot-link negatives, when the step drew any
            loss = loss + self.config.negative_weight * self._negative_term(
                student_a, student_b, teacher_a, teacher_b, *negatives)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at {stage} step {stage_step}; lower head_lr/backbone_lr")
        # the head's two groups, then the backbone in module order: one summation order at any last_layer_lr
        head = [p for g in self.optimizer.param_groups[:2] for p in g["params"]]
        params = [p for p in head + list(self.model.student_backbone.parameters()) if p.requires_grad]
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        if self.step < self.config.freeze_last_layer_epochs * self.steps_per_epoch:
            for p in self.model.student_head.last_layer_parameters():
                p.grad = None
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.config.momentum_schedule == "stage":
            momentum = cosine_momentum(stage_step, stage_total, self.config.teacher_momentum)
        else:
            momentum = cosine_momentum(self.step, self.total_steps, self.config.teacher_momentum)
        ema_update(self.model.teacher_head, self.model.student_head, momentum)
        if stage == "joint":
            ema_update(self.model.teacher_backbone, self.model.student_backbone, momentum)
        elif self.cache_features:
            ema_update(self.model.teacher_backbone.last_layer_parameters(),
                       self.model.student_backbone.last_layer_parameters(), momentum)
        self.loss.update_center(teacher_a, teacher_b)
        value = float(loss.detach())
        self.result.loss_curve.append(value)
        self.result.stage_of_step.append(stage)
        self.step += 1
        return value

    def _negative_term(self, student_a: torch.Tensor, student_b: torch.Tensor, teacher_a: torch.Tensor,
                       teacher_b: torch.Tensor, rows: torch.Tensor, student_n: torch.Tensor,
                       teacher_n: torch.Tensor) -> torch.Tensor:
        """The ranking loss of the anchors in ``rows``: their positive pair's loss below their
        cannot-link negative's (:mod:`vcn_plugin.ssl.negative_loss`)."""
        positive = self.loss.pair_losses(student_a[rows], student_b[rows], teacher_a[rows], teacher_b[rows])
        negative = self.loss.pair_losses(student_a[rows], student_n, teacher_a[rows], teacher_n)
        return negative_ranking_loss(positive, negative, self.config.negative_form)

    def _sample_negatives(self, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each anchor chip whose track has cannot-link partners: its row and a chip of one of
        them, drawn uniformly (partner track, then chip)."""
        rows, chips = [], []
        for row, chip in enumerate(anchors):
            partners = self.negatives[self.data.track_of_chip[chip]]
            if partners:
                other = self.data.chips_of_track[partners[self.pair_rng.integers(len(partners))]]
                rows.append(row)
                chips.append(other[self.pair_rng.integers(len(other))])
        return np.array(rows, dtype=np.int64), np.array(chips, dtype=np.int64)

    # ---- stages -------------------------------------------------------------------------------
    @torch.no_grad()
    def _init_prototypes_from_tracks(self, embeddings: torch.Tensor) -> None:
        """Prototype k = the mean bottleneck of track k (of the first K tracks), in student and teacher."""
        z = self.model.student_head.bottleneck(embeddings.to(self.device)).float()
        track = torch.from_numpy(self.data.track_of_chip).to(self.device)
        n_tracks = min(len(self.data.keys), self.config.num_prototypes)
        sums = torch.zeros(len(self.data.keys), z.shape[1], device=self.device).index_add_(0, track, z)
        means = torch.nn.functional.normalize(sums[:n_tracks], dim=1)
        for head in (self.model.student_head, self.model.teacher_head):
            direction = head.last_layer.parametrizations.weight.original1
            direction[:n_tracks] = means.to(direction.dtype)

    def _train_head(self, views: torch.Tensor, steps: int, round_index: int = 0) -> None:
        """Head-only steps on (V, N, D) cached views (embeddings, or features when the backbone's
        last layer trains too); after a matching round (``round_index`` > 0) matched tracks are
        positives too."""
        self.model.student_backbone.requires_grad_(False)
        for p in self.model.student_backbone.last_layer_parameters() if self.cache_features else ():
            p.requires_grad_(True)
        num_views = views.shape[0]
        student, teacher = self._cached_network("student"), self._cached_network("teacher")
        for stage_step in range(steps):
            anchors, partners = self._sample_pairs(self.config.batch_size, use_matches=round_index > 0)
            view_a = self.pair_rng.integers(num_views, size=len(anchors))
            # a different view when the pair is one chip (single-chip track) and there are views to spare
            view_b = (view_a + 1 + self.pair_rng.integers(max(1, num_views - 1), size=len(anchors))) % num_views
            cached_a = views[torch.from_numpy(view_a), torch.from_numpy(anchors)]
            cached_b = views[torch.from_numpy(view_b), torch.from_numpy(partners)]
            rows, negatives = self._sample_negatives(anchors) if self.config.negative_weight > 0 else ((), ())
            cached_n = None
            if len(rows):
                view_n = self.pair_rng.integers(num_views, size=len(rows))
                cached_n = views[torch.from_numpy(view_n), torch.from_numpy(negatives)]

            def embed() -> tuple:
                with torch.no_grad():
                    teacher_a, teacher_b = teacher(cached_a), teacher(cached_b)
                    teacher_n = None if cached_n is None else teacher(cached_n)
                out = (student(cached_a), student(cached_b), teacher_a, teacher_b)
                if cached_n is None:
                    return out
                return (*out, torch.from_numpy(rows).to(self.device), student(cached_n), teacher_n)

            loss = self._optimise("head", stage_step, steps, embed)
            self._report("head", stage_step, steps, loss, round=round_index)
        self.result.stage_steps["head"] = self.result.stage_steps.get("head", 0) + steps

    def _cached_network(self, side: str) -> Callable[[torch.Tensor], torch.Tensor]:
        """The part of ``side``'s network ("student" or "teacher") that runs on cached views."""
        head = getattr(self.model, f"{side}_head")
        if not self.cache_features:
            return head
        backbone = getattr(self.model, f"{side}_backbone")
        return lambda features: head(backbone.embed_from_features(features))

    def _train_joint(self, round_index: int) -> None:
        self.model.student_backbone.requires_grad_(True)
        for stage_step in range(self.joint_steps):
            anchors, partners = self._sample_pairs(self.config.joint_batch_size, use_matches=True)
            x = self._augmented_batch(np.concatenate([anchors, partners]))
            n = len(anchors)

            def embed() -> tuple:
                student = self.model.student_head(self.model.student_backbone(x))
                with torch.no_grad():
                    teacher = self.model.teacher_head(self.model.teacher_backbone(x))
                return student[:n], student[n:], teacher[:n], teacher[n:]

            loss = self._optimise("joint", stage_step, self.joint_steps, embed)
            self._report("joint", stage_step, self.joint_steps, loss, round=round_index + 1)
        self.result.stage_steps["joint"] = self.result.stage_steps.get("joint", 0) + self.joint_steps

    def _match(self, round_index: int, views: np.ndarray) -> None:
        """Coarse matching on (V, N, D) teacher-backbone embeddings of the chips and their
        augmentations (see :mod:`vcn_plugin.ssl.track_gaussians` for why views)."""
        total = len(self.data.keys)
        self.progress("match", 0, total, {"round": round_index + 1})
        per_track = {key: views[:, idx] for key, idx in zip(self.data.keys, self.data.chips_of_track)}
        results = []
        rules = self.config.matching.split("+")
        if "gaussian" in rules:
            results.append(match_tracks(per_track, self.cannot_link, min_faces=self.config.min_faces_to_fit))
        if "mutual" in rules:
            results.append(match_mutual_neighbours(per_track, self.cannot_link))
        if "clusters" in rules:
            results.append(pairs_of_clusters(self.data.keys, self._teacher_clusters(views[0])))
        if "agreed-clusters" in rules:
            results.append(pairs_of_clusters(self.data.keys, self._agreed_clusters(views[0])))
        if "agreed-hdbscan" in rules:
            results.append(pairs_of_clusters(self.data.keys, self._agreed_clusters(views[0], second="hdbscan")))
        result = union_of_matches(*results)
        if self.config.drop_conflicts:
            result = drop_conflicting_matches(result, self.cannot_link)
        index = {key: i for i, key in enumerate(self.data.keys)}
        self.matches = [[] for _ in self.data.keys]
        for a, b in result.pairs:
            self.matches[index[a]].append(index[b])
            self.matches[index[b]].append(index[a])
        self.result.match_counts.append(len(result.pairs))
        self.result.match_pairs.append(list(result.pairs))
        logger.info("round %d: coarse matching made %d track pairs", round_index + 1, len(result.pairs))
        self.progress("match", total, total, {"round": round_index + 1, "pairs": len(result.pairs)})

    def _agreed_clusters(self, embeddings: np.ndarray, second: str = "cosine") -> np.ndarray:
        """The clusters that the loss clustering (with the embeddings' agreement view, as the
        product clusters) and a clustering of the embeddings' tracks agree on: the same rule on
        their track cosine (``second="cosine"``), or HDBSCAN on their track means, whose noise
        tracks are never paired (``"hdbscan"``; it takes no cannot-link pairs, and the loss
        clustering never joins them)."""
        n_tracks = len(self.data.keys)
        if second == "hdbscan":
            other = cluster_tracks("hdbscan", self.data.track_of_chip, embeddings=embeddings, n_tracks=n_tracks,
                                   hdbscan_noise="unknown").labels  # fmt: skip
        else:
            other = cluster_tracks("cosine", self.data.track_of_chip, embeddings=embeddings,
                                   n_tracks=n_tracks, cannot_link=self.cannot_rows).labels  # fmt: skip
        return meet_of_partitions(self._teacher_clusters(embeddings, agreement=True), other)

    @torch.no_grad()
    def _teacher_clusters(self, embeddings: np.ndarray, agreement: bool = False) -> np.ndarray:
        """The product's clustering (loss metric, default rule) of the tracks under the teacher as
        it stands, from the teacher backbone's ``embeddings`` (N, D) of the chips; with
        ``agreement``, those embeddings are also its agreement view (without, the rule of
        ``matching="clusters"`` as it was measured)."""
        head = self.model.teacher_head
        x = torch.from_numpy(np.ascontiguousarray(embeddings)).to(self.device)
        z = head.bottleneck(x)  # once: the logits are head.last_layer(z), as in head(x)
        probs = teacher_probabilities(head.last_layer(z), self.loss.center, self.config.teacher_temp)
        probs = probs.cpu().numpy()
        prototypes = head.prototypes().float().cpu().numpy()
        factors = StudentFactors(z.float().cpu().numpy(), prototypes, self.config.student_temp)
        return cluster_tracks("loss", self.data.track_of_chip, probs=probs, student=factors,
                              n_tracks=len(self.data.keys), cannot_link=self.cannot_rows,
                              embeddings=embeddings if agreement else None).labels  # fmt: skip

    # ---- data ---------------------------------------------------------------------------------
    def _sample_pairs(self, batch_size: int, use_matches: bool) -> tuple[np.ndarray, np.ndarray]:
        """Anchors: a uniformly drawn track, then one of its chips. Partner: another chip of the
        same track, or (share ``match_pair_fraction``) a chip of one of its matched tracks."""
        rng, data = self.pair_rng, self.data
        tracks = rng.integers(len(data.keys), size=batch_size)
        anchors = np.empty(len(tracks), dtype=np.int64)
        partners = np.empty(len(tracks), dtype=np.int64)
        for i, track in enumerate(tracks):
            own = data.chips_of_track[track]
            anchors[i] = own[rng.integers(len(own))]
            matched = self.matches[track] if use_matches else []
            if matched and rng.random() < self.config.match_pair_fraction:
                other = data.chips_of_track[matched[rng.integers(len(matched))]]
                partners[i] = other[rng.integers(len(other))]
            elif len(own) > 1:
                others = own[own != anchors[i]]
                partners[i] = others[rng.integers(len(others))]
            else:
                partners[i] = anchors[i]  # single-chip track: two augmentations of one chip
        return anchors, partners

    def _augmented_batch(self, chip_indices: np.ndarray, augment: bool = True) -> torch.Tensor:
        chips = self.data.chips[chip_indices]
        if augment:
            chips = augment_chips(torch.from_numpy(chips), self.augment_rng, self.config.augment).numpy()
        return self.model.student_backbone.preprocess(chips).to(self.device)

    def _cache_views(self) -> torch.Tensor:
        """(views, N, D) frozen-backbone embeddings (or features, see ``cache_features``): view 0
        the chips as they are, then augmentations."""
        return self._embed_views(self.model.student_backbone, "cache")

    @torch.no_grad()
    def _embeddings(self, backbone: Backbone, views: torch.Tensor) -> torch.Tensor:
        """(V, N, D) embeddings of cached ``views``: the views themselves, or ``backbone``'s last
        layer on them when they are features."""
        if not self.cache_features:
            return views
        batch = self.config.inference_batch_size
        flat = views.reshape(-1, views.shape[-1])
        out = torch.cat([backbone.embed_from_features(flat[i : i + batch]).float() for i in range(0, len(flat), batch)])
        return out.reshape(*views.shape[:2], -1)

    @torch.no_grad()
    def _record_health(self, after: str, views: torch.Tensor) -> None:
        """The teacher's health on the chips as they are (view 0 of the cached ``views``)."""
        embeddings = self._embeddings(self.model.teacher_backbone, views[:1])[0]
        out = self.model.teacher_head(embeddings.to(self.device))
        probs = teacher_probabilities(out, self.loss.center, self.config.teacher_temp).cpu().numpy()
        health = teacher_health(probs, self.data.track_of_chip)
        self.result.health.append({"after": after, **health.to_dict()})

    @torch.no_grad()
    def _embed_views(self, backbone: Backbone, stage: str = "match", num_views: int | None = None) -> torch.Tensor:
        """(views, N, D) embeddings (or features, see ``cache_features``) by ``backbone``: the
        chips, then augmentations of them (``num_views``, default ``cache_views``)."""
        run = backbone.features if self.cache_features else backbone
        n, batch = len(self.data.chips), self.config.inference_batch_size
        num_views = num_views or self.config.cache_views
        total = num_views * math.ceil(n / batch)
        views, done = [], 0
        for view in range(num_views):
            parts = []
            for i in range(0, n, batch):
                x = self._augmented_batch(np.arange(i, min(i + batch, n)), augment=view > 0)
                parts.append(run(x).float())
                done += 1
                if stage in ("cache", "health"):
                    self.progress(stage, done, total, {"view": view})
            views.append(torch.cat(parts))
        return torch.stack(views)

    def _report(self, stage: str, step: int, total: int, loss: float, **info: Any) -> None:
        epoch = self.step // self.steps_per_epoch
        self.progress(stage, step + 1, total, {"loss": loss, "epoch": epoch, **info})


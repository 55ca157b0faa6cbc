"""Configuration of the self-supervised finetuning (one set of defaults for every video)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from vcn_plugin.ssl.augment import AugmentConfig
from vcn_plugin.ssl.head import DEFAULT_BOTTLENECK_DIM, DEFAULT_HIDDEN_DIM, DEFAULT_NUM_LAYERS, DEFAULT_NUM_PROTOTYPES
from vcn_plugin.ssl.loss import DEFAULT_CENTER_MOMENTUM, DEFAULT_STUDENT_TEMP, DEFAULT_TEACHER_TEMP
from vcn_plugin.ssl.negative_loss import FORMS as NEGATIVE_FORMS

DEVICES = ("auto", "cpu", "cuda")
MATCHING_RULES = ("gaussian", "mutual", "gaussian+mutual", "clusters", "gaussian+clusters", "agreed-clusters",
                  "gaussian+agreed-clusters", "agreed-hdbscan")
PROTOTYPE_INITS = ("random", "tracks")
TEACHER_BACKBONES = ("ema", "round")
HEAD_INPUTS = ("raw", "centred")
MOMENTUM_SCHEDULES = ("run", "stage")


@dataclass
class FinetuneConfig:
    """Hyperparameters of DINO-style finetuning on track positives (VideoClusterNet).

    Step counts scale with the data: one *epoch* is ``ceil(num_chips / batch_size)``
    steps (every chip is an anchor once on average). Each stage runs its
    epochs, clamped to ``[min_steps, max_steps]`` so that tiny videos still
    train and large ones stay bounded. The caps are sized for a 2-core CPU:
    ~50 tracks of ~8 chips with the dlib ResNet takes a few minutes
    (``benchmarks/finetune.py``); on a GPU raise ``joint_max_steps_per_round``.

    Attributes:
        seed: seeds weights init, pair sampling and augmentation; same seed ->
            same model on CPU.
        device: "auto" (CUDA when available), "cpu" or "cuda" (error if absent).
            CUDA trains with autocast mixed precision (bf16 where supported, else fp16).
        num_prototypes: K, the head's output size (see :mod:`vcn_plugin.ssl.head`).
        hidden_dim, bottleneck_dim, head_layers: DINO head shape (2048, 256, 3).
        teacher_temp, student_temp, center_momentum: DINO's 0.04, 0.1, 0.9.
        teacher_momentum: EMA momentum at the first step, rising to 1 on a
            cosine schedule over all steps (DINO's 0.996).
        batch_size: positive pairs per head-stage step; also defines an epoch.
        joint_batch_size: positive pairs per joint-stage step (2 x that many chips
            through the student and the teacher backbone; 16 keeps a CPU step
            to a few seconds with the dlib ResNet).
        head_lr: AdamW peak learning rate of the head.
        backbone_lr: AdamW peak learning rate of the backbone in the joint stage
            (10x lower than the head: the backbone is pretrained).
        weight_decay: AdamW weight decay (DINO's initial 0.04; not on biases).
        grad_clip: max global gradient norm (DINO's 3.0).
        warmup_fraction: linear LR warmup as a fraction of each stage, then cosine decay.
        freeze_last_layer_epochs: epochs at the start in which the prototypes
            do not move (DINO: 1; stabilises the start).
        head_epochs, head_min_steps, head_max_steps: stage 1 (backbone frozen but for its
            last layer, see ``last_layer_lr``). Cheap: the frozen backbone embeds ``cache_views`` views of every
            chip once and the steps only run the heads (~0.2 s a step on one
            CPU thread). At least 300 steps: on 12 real test tracks (6 people,
            2 tracks of 5 photos each) 60 steps (30 epochs) left the head near
            uniform (entropy 7.95 of ln 4096 = 8.32) and the loss metric merged
            two people; 300 steps separated all six. On the benchmark suite 100 steps
            scored higher on average (.752 against .642, both with mutual matching) but
            merged the six people of that test into 2 clusters, so 300 stays. With the last
            layer training in these steps (``last_layer_lr``), 1000 steps (study point
            ``head-1k``) move the backbone far (cosine to pretrained .70-.83 against .97) and
            sharpen the teacher (entropy ~.7): the hard episode rises (.830 -> .887) but the loss
            metric falls on the suite (.931 against .938) and held out (.818 against .902, cluster
            ratio 1.21), for 90-100 s per episode.
        cache_views: views per chip: the chip itself and ``cache_views - 1``
            augmentations. Stage 1 trains on them (embedded once by the frozen
            backbone) and every coarse-matching round fits its Gaussians on them.
        rounds: coarse-matching + joint-training rounds of stage 2. Two (the default). A third
            round with agreed-cluster matching (study point ``rounds-3``, 2026-12-07, seeds 0-2) lifts
            matching precision on the hard episode for seeds 0 and 2 (.77 -> .90, .85 -> .89; seed 1
            .90 -> .89), the suite (.946 -> .949) and ``ho2`` (.923 -> .931), but loses a track or
            two on ``ho`` (.935 -> .929) and takes about 40% longer (hard episode
            132-136 s). Over seeds 0-4 the suite ties (.948 against .947) and held out it loses
            (.922 against .926 over ``ho`` and ``ho2``); see "Three rounds over five seeds: not
            taken" in ``docs/finetune_study.md``.
        joint_epochs_per_round, joint_min_steps_per_round, joint_max_steps_per_round:
            stage 2 (backbone and head), per round.
        match_pair_fraction: share of a track's pairs drawn from its matched
            tracks (when it has any); the rest are two faces of the track itself. What the
            matched pairs are worth (study point ``no-match``, 0): on the hard episode the loss
            metric falls from .830 to .792 without them, although half of them are false there
            (matching precision .48 at recall .31).
        matching: how coarse matching pairs tracks across shots: "gaussian" (the paper's
            per-track Gaussians, :mod:`vcn_plugin.ssl.track_gaussians`) or "mutual"
            (mutual nearest track means, :mod:`vcn_plugin.ssl.mutual_neighbours`), or a
            clustering of the tracks (below; the default). "gaussian" was the default until
            2026-12-07, by the mean over the 10-episode suite of
            ``benchmarks/finetune_study.py``: "mutual" finds more true pairs (recall .63
            against .47) at no better precision (.71 against .62), and the loss metric falls
            (.642 against .665 accuracy with transitive linkage). "gaussian+mutual" trains on the pairs
            of both: with the per-round head steps it scores .821 on the suite against .787 (recall .76
            against .47 at precision .63 against .62, cluster ratio 0.97, WCP .861 against .896); it is
            a study point until the README tables are regenerated with it (the real-photo test is exact with it
            for seeds 0, 1 and 2). "clusters" (:mod:`vcn_plugin.ssl.cluster_matching`) pairs every two
            tracks of one cluster of the product's clustering of the current teacher; "gaussian+clusters"
            trains on both. "clusters" is a study point: over finetune seeds 0, 1 and 2 on the 10-episode suite
            it finds .93-.97 of the true cross-shot pairs (the Gaussians .42-.43) at precision .62-.69
            (.62-.64), but the loss metric does not gain (suite .925 against .926, held out .937 against
            .949): each round's clustering repeats the head stage's, so the rounds confirm it rather than
            correct it.
            The real-photo test is exact with it for seeds 0, 1 and 2. **Default "agreed-clusters"**
            (since 2026-12-07): every round, the tracks are clustered twice with the product's rule on
            the teacher as it stands, on the loss and on the teacher backbone's track cosine, and two
            tracks are a pair where both clusterings put them together
            (:func:`~vcn_plugin.ssl.cluster_matching.meet_of_partitions`); no parameter. Measured with
            ``benchmarks/finetune_study.py --points agreed-clusters``, finetune seeds 0, 1 and 2 on one
            machine, against "gaussian" (the defaults before): suite (10) .946 against .934, its nine
            cells with detection recall >= .8 .972 against .960 with every cluster ratio in
            [0.91, 1.11] (0.89-1.11 before); ``ho2`` (7) .923 against .912; ``ho`` (7) .935 against
            .938 (one track); across the series' episodes (one finetune of 91 tracks) .782 against
            .885, one seed of three over-splitting there. The last round's matching finds .78-.88 of the hard
            episode's true cross-shot pairs at precision .77-.90 (.94-1.00 among labelled pairs; the
            Gaussians .27-.29 at .65-.70) and .92-1.00 in six sweep cells; finetuning is quicker (74-78 s
            an episode on average against 89-119 s), as the head trains on more consistent pairs. The
            real-photo test is exact with it for seeds 0, 1 and 2 (six pairs per round, nothing else).
            "agreed-hdbscan" (a study point) takes HDBSCAN on the teacher backbone's track means as the
            second view (its noise tracks are never paired): the hard episode's last-round precision
            rises to .94 / .93 / .89 (seeds 0 / 1 / 2, against .77 / .90 / .85) and 3-4 sweep cells
            pass precision >= .95 at recall >= .5 (1-2 with the default), but the loss metric falls
            (suite .939 against .946; held out -.003 over four runs), so it is no default.
            Rerun after the scoring fix of 2026-12-06 (identities pooled across a track's gaps), with
            today's defaults otherwise, "mutual" leads on the 10-episode suite over seeds 0, 1 and 2
            (.947 / .921 / .932 against .942 / .913 / .898; matching precision .91-1.00 at recall
            .77-.85 in the sweep cells, the Gaussians 1.00 at .31-.69 in five of them) but falls on
            the 7 held-out episodes for every seed (.921 / .942 / .935 against .944 / .954 / .950:
            it over-splits, ratio 1.22 in three of them), so "gaussian" stayed then. The real-photo
            test is exact with "mutual" for seeds 0, 1 and 2. "gaussian+mutual", rerun then:
            suite .942 / .921 / .917, held out .937 / .914 / .935 (against .949), so not it either.
        min_faces_to_fit: tracks with fewer faces are not fitted in matching
            (they can still be matched by others).
        round_head_steps: head-only steps (on the cached views, with the round's matched
            pairs as positives) after each coarse-matching round, before its joint steps; 0 (the
            paper) trains the head on matched pairs only inside the joint stage. Default 100:
            on the 10-episode suite it raises the loss metric from .722 to .787 accuracy (hard
            episode .660 -> .717, WCP .831 -> .896, cluster ratio 1.07 -> 1.13) and moves the
            backbone (finetuned FINCH .877 -> .901, pretrained .877), for 44 s instead of 33 s
            of finetuning per episode; and the real-photo test is exact for finetune seeds 0, 1
            and 2, where 0 merges two of the six people for seed 1. 300 per round are purer
            (WCP .932) but split more (cluster ratio 1.30, accuracy .756). With the last layer
            training (``last_layer_lr``), 300 per round lift the hard episode to .906 but the
            suite falls to .896 (cluster ratio 0.88: with a sharper teacher, entropy ~.8, first
            neighbours join more people).
        prototype_init: "random" (DINO's truncated normal) or "tracks": the first prototypes
            are the tracks' mean bottlenecks (the head at initialisation, on the cached
            frozen-backbone embeddings), the rest random, so the teacher starts sharp on each
            track's own prototype instead of near uniform. Default "random": on the 10-episode
            suite "tracks" scores higher (loss-metric accuracy .746 against .720, WCP .910
            against .829, hard episode .698 against .660) but splits more (cluster ratio 1.29
            against 1.07), and on the real-photo test it merges two of the six people for
            seeds 0 and 1, where "random" is exact for seed 0.
        teacher_backbone: how the teacher's backbone follows the student's in the joint stage:
            "ema" (DINO: every step, with the teacher momentum) or "round" (copied from the student
            after each round's joint steps: DINO's "previous epoch" teacher, its Table 6). Default
            "ema". Measured on the 10-episode suite (``benchmarks/finetune_study.py``, scored by
            ``benchmarks/cluster_rules.py``) with the last layer frozen (before ``last_layer_lr``,
            which moves the teacher's last layer in the head steps): the momentum rises to 1
            over all steps and the joint
            steps come last, so with "ema" the teacher backbone keeps the pretrained weights (mean
            cosine of finetuned to pretrained embeddings .9998-.99998 per episode). The study point
            "adapt-backbone" ("round", ``backbone_lr`` 1e-5, "mutual" matching) moves it (cosine
            .86-.97): the paper-exact loss rises from .733 to .837 and finetuned FINCH from .901 to
            .911 (pretrained .877), but the best loss rule does not beat the default finetune's
            (.910 with the student predictor against .913) and the hard episode falls (.774 against
            .811), so "ema" stays.
        momentum_schedule: "run" (default: the teacher momentum's cosine spans all steps) or "stage"
            (it restarts in every stage, so late stages move the teacher too). It left the loss
            metric as it was on the three suite episodes it ran on (1.000, .750, .811).
        final_head_steps: head-only steps after the last round, on views re-embedded by the final
            teacher backbone (default 0; with "round" they fit the head to the adapted backbone).
        last_layer_lr: AdamW peak learning rate of the backbone's last layer (its embedding layer,
            ``Backbone.embed_from_features``: dlib's 256 -> 128 fc) in the head-only steps. Those
            steps run on cached views, so the cache holds the backbone's features (the last
            layer's input) instead of its embeddings, and the last layer trains with the head for
            the price of a head step; the teacher's last layer follows by EMA, and matching and
            the health numbers use the teacher's embeddings. 0 (the paper's schedule) keeps the
            backbone frozen until the joint stage. Default 5e-5 (``backbone_lr``), measured with
            ``benchmarks/finetune_study.py`` + ``benchmarks/cluster_rules.py``: the joint stage's 20
            CPU steps at a teacher momentum near 1 leave the teacher backbone at the pretrained
            weights (cosine .9999, finetuned FINCH / HDBSCAN = pretrained to the digit on the 7
            held-out episodes); with 5e-5 it moves (cosine .97) and the finetuned backbone
            gains on the 10-episode suite (FINCH .877 -> .913, HDBSCAN .906 -> .913) and held
            out (.815 -> .836, .845 -> .870). The loss metric: suite .938 against .928 (cells won
            9 against 8 of 10), held out .902 against .910, series .934 against .959; .925
            against .926 over all 20 episodes. 2e-4 moves it further (cosine .91; suite .939,
            10 of 10 cells) but falls held out (.875). Over finetune seeds 0, 1 and 2
            (``finetune_study.py --seed``) the suite gives .908 against .906 frozen (finetuned
            FINCH .897 against .887): a lead inside one seed's spread (suite means .890-.938).
            The real-photo test stays exact for seeds 0, 1 and 2. Memory: the cache holds ``cache_views`` x chips feature vectors
            on the training device (dlib 256-d, MobileFaceNet 512-d: 3-6 KB per chip; an
            insightface iresnet's fc input is 512 x 7 x 7, 300 KB per chip at 3 views, so 10k
            chips take 3 GB); set 0 to cache embeddings instead.
        drop_conflicts: drop every match of a matched group that chains two tracks seen in one
            frame (:func:`~vcn_plugin.ssl.track_gaussians.drop_conflicting_matches`). Default False:
            on the 10-episode suite it raises the last round's matching precision from .621 to .783
            (recall .473 -> .315) but leaves the loss metric unchanged (.913), since the teacher
            barely absorbs the rounds (see ``teacher_backbone``). With the last layer training
            (``last_layer_lr``) the rounds do reach the teacher, and dropping matches hurts: on the
            hard episode precision rises from .48 to .82 at recall .19 instead of .31, and the loss
            metric falls from .830 to .717.
        head_input: "raw" (DINO) or "centred": the heads see the backbone's embeddings minus their
            mean over this video's chips, scaled to unit RMS norm (fixed when training starts, from
            the frozen backbone; :meth:`~vcn_plugin.ssl.head.DINOHead.set_input_normalisation`).
            Why it was tried: dlib's embeddings of one video share a large common direction (the
            mean of the unit embeddings has norm .92-.95; two different people sit at cosine
            .84-.90, centred at -.03 to -.08), and the heads at initialisation map them all to
            nearly one bottleneck, so after the CPU budget the teacher stays near uniform where a
            film look compresses the faces further (mean teacher entropy 7.5-8.2 of ln 4096 = 8.32
            on the hard episode and the day-for-night cells, 2-3 on the easy pair). Centred, the
            teacher is sharp everywhere (entropy .2-.9; 2.9 on the severest day-for-night cell)
            and coarse matching gains precision (suite .64 against .62). Default "raw", measured
            with ``benchmarks/finetune_study.py`` (point ``centred-input``, seed 0) and
            ``benchmarks/cluster_rules.py``: the sharp teacher puts two tracks of one person in
            different shots on different prototypes, and the loss metric splits: suite .915
            against .938 (cluster ratio 0.92), held out .861 against .902 (ratio 1.21 against
            1.04), series .899 against .934 (1.21); hard episode .849 against .830. With raw
            neighbours it scores .936 / .874 / .899; the mutual-neighbours start is pure (WCP .995
            on the suite) but splits (ratio 1.22 on the suite, 1.83 held out).
        negative_weight: weight of the cannot-link ranking term in the head-only steps
            (:mod:`vcn_plugin.ssl.negative_loss`): each anchor whose track was seen in one frame with
            another track gets a face of that track as a negative, and the loss ranks the positive
            pair below it. Default 0 (the paper: positives only), measured with
            ``benchmarks/finetune_study.py`` (points ``negatives``, ``negatives-hinge``; seed 0):
            with the soft margin (weight 1) the teacher sharpens everywhere (mean entropy on the
            hard episode 7.66 -> 3.14 of 8.32) and the loss metric falls on the 10-episode suite
            (.904 against .944, cells won or tied 5 against 9; hard episode .830 against .906) and on
            the 7 episodes of ``ho2`` (.883 against .909), splitting the easy pair (ratio 1.22) and
            joining people at low key 2 (ratio 0.82). With the hinge the teacher stays as it was
            (entropy within .3) and ``ho2`` falls to .886 (its hard episode .830 against .906); for seed 1
            the suite falls to .905 against .919 and ``ho2`` is unchanged.
            The look-alikes that the default joins are never seen in one frame, so no negative
            names them.
        negative_form: "softplus" (the soft margin) or "hinge" (zero once the ranking holds).
        inference_batch_size: chips per forward pass in embedding/inference.
        augment: chip augmentation ranges.
    """

    seed: int = 0
    device: str = "auto"
    num_prototypes: int = DEFAULT_NUM_PROTOTYPES
    hidden_dim: int = DEFAULT_HIDDEN_DIM
    bottleneck_dim: int = DEFAULT_BOTTLENECK_DIM
    head_layers: int = DEFAULT_NUM_LAYERS
    teacher_temp: float = DEFAULT_TEACHER_TEMP
    student_temp: float = DEFAULT_STUDENT_TEMP
    center_momentum: float = DEFAULT_CENTER_MOMENTUM
    teacher_momentum: float = 0.996
    batch_size: int = 32
    joint_batch_size: int = 16
    head_lr: float = 5e-4
    backbone_lr: float = 5e-5
    weight_decay: float = 0.04
    grad_clip: float = 3.0
    warmup_fraction: float = 0.1
    freeze_last_layer_epochs: int = 1
    head_epochs: int = 30
    head_min_steps: int = 300
    head_max_steps: int = 300
    cache_views: int = 3
    rounds: int = 2
    joint_epochs_per_round: int = 1
    joint_min_steps_per_round: int = 5
    joint_max_steps_per_round: int = 10
    match_pair_fraction: float = 0.5
    matching: str = "agreed-clusters"
    min_faces_to_fit: int = 3
    prototype_init: str = "random"
    round_head_steps: int = 100
    teacher_backbone: str = "ema"
    momentum_schedule: str = "run"
    final_head_steps: int = 0
    last_layer_lr: float = 5e-5
    drop_conflicts: bool = False
    head_input: str = "raw"
    negative_weight: float = 0.0
    negative_form: str = "softplus"
    inference_batch_size: int = 64
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        positive_ints = (
            "num_prototypes", "hidden_dim", "bottleneck_dim", "head_layers", "batch_size", "joint_batch_size", "head_epochs",
            "head_max_steps", "cache_views", "joint_epochs_per_round", "joint_max_steps_per_round",
            "inference_batch_size", "min_faces_to_fit",
        )
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("head_min_steps", "joint_min_steps_per_round", "rounds", "freeze_last_layer_epochs",
                     "round_head_steps", "final_head_steps"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("teacher_temp", "student_temp", "head_lr", "grad_clip"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("backbone_lr", "weight_decay", "last_layer_lr", "negative_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("teacher_momentum", "center_momentum", "warmup_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        choices = (("matching", MATCHING_RULES), ("negative_form", NEGATIVE_FORMS), ("prototype_init", PROTOTYPE_INITS), ("head_input", HEAD_INPUTS),
                   ("teacher_backbone", TEACHER_BACKBONES), ("momentum_schedule", MOMENTUM_SCHEDULES))
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not 0.0 <= self.match_pair_fraction <= 1.0:
            raise ValueError(f"match_pair_fraction must be in [0, 1], got {self.match_pair_fraction}")
        if self.min_faces_to_fit < 3:
            raise ValueError(f"min_faces_to_fit must be >= 3 (fit on 2, hold 1 out), got {self.min_faces_to_fit}")

    @classmethod
    def tiny(cls, **overrides: Any) -> "FinetuneConfig":
        """A seconds-long configuration for tests: small head, few steps, one round."""
        values: dict[str, Any] = dict(
            num_prototypes=64, hidden_dim=64, bottleneck_dim=32, batch_size=4, joint_batch_size=4, head_lr=1e-3, backbone_lr=1e-3,
            head_epochs=1, head_min_steps=4, head_max_steps=4, cache_views=2, rounds=1,
            joint_epochs_per_round=1, joint_min_steps_per_round=3, joint_max_steps_per_round=3, round_head_steps=2,
            freeze_last_layer_epochs=0, inference_batch_size=16,
        )
        values.update(overrides)
        return cls(**values)

    def steps_per_epoch(self, num_chips: int) -> int:
        """Head-stage steps in which every chip is an anchor once on average."""
        return max(1, math.ceil(num_chips / self.batch_size))

    def head_steps(self, num_chips: int) -> int:
        return _clamp(self.head_epochs * self.steps_per_epoch(num_chips), self.head_min_steps, self.head_max_steps)

    def joint_steps_per_round(self, num_chips: int) -> int:
        steps = self.joint_epochs_per_round * max(1, math.ceil(num_chips / self.joint_batch_size))
        return _clamp(steps, self.joint_min_steps_per_round, self.joint_max_steps_per_round)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "FinetuneConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown FinetuneConfig keys {sorted(unknown)}")
        return cls(**values)


def resolve_device(device: str) -> torch.device:
    """"auto" -> CUDA when available else CPU; "cuda" without CUDA is an error."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "device 'cuda' was requested but torch sees no CUDA GPU "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}); use device='cpu' or 'auto'"
        )
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _clamp(value: int, low: int, high: int) -> int:
    return max(min(value, high), min(low, high))

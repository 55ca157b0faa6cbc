"""User corrections of face identities, their undo log, and the constraints they put on clustering.

Every correction works on tracks, named by their key ``(video sample id, track index)``, and
writes through :func:`vcn_plugin.fo.track_records.set_identities`, so the frame labels
(``frames.faces.detections.label``, the source of truth) and the track records
(``<dataset>-vcn-tracks``) change together.

Operations
    :func:`rename_identity` (renaming onto an existing name merges), :func:`merge_identities`,
    :func:`move_tracks` (to an existing or a new identity), :func:`split_tracks` (off into the
    next free ``person_NN``), :func:`mark_unknown`, :func:`mark_not_face`, :func:`undo_last`.

Where the log lives
    ``dataset.info["vcn_corrections"]`` of the *video* dataset: ``{"version": 1, "log": [...]}``,
    one JSON dict per correction (see :class:`Correction`): the operation, a UTC timestamp, the
    tracks whose label changed with their label before and after, the operation's names, and
    what it implies for clustering (tracks placed together, tracks separated). Undo pops the
    last entry and restores the labels it recorded, frame by frame; it is a stack, so repeated
    undos walk back through the log. Undo refuses when the labels of the entry's tracks changed
    since (for example by re-clustering), rather than overwrite newer labels.

Constraints (:func:`get_constraints`, for the clustering)
    The log is replayed in order:

    - tracks a user placed together (rename, merge, move into an identity, split off together)
      form one must-link group, together with the tracks of the identity they joined;
    - tracks moved away from an identity (move, split, mark Unknown / not a face) are
      cannot-linked to every track that stayed in it;
    - a later correction wins: a track moved again leaves its old group, and a cannot-link
      pair that later ends up in one group is dropped, so the constraints never contradict;
    - a user-given name (anything but ``person_NN`` and the reserved labels) sticks to its
      tracks: :func:`apply_names_after_clustering` carries it onto the new clusters;
    - tracks marked Unknown or not a face are excluded from clustering and keep that label.

``not_face``
    A track the user says is no face (a false detection). It is excluded from clustering like
    an Unknown track. Evaluation does not know this label: it must score ``not_face`` tracks as
    Unknown (a false detection matched to no ground-truth face is not scored at all).
"""
from __future__ import annotations

from vcn_plugin.corrections.constraints import Constraints, apply_names_after_clustering, get_constraints
from vcn_plugin.corrections.log import INFO_KEY, LOG_VERSION, Correction, correction_log
from vcn_plugin.corrections.names import (
    AUTO_NAME,
    EXCLUDED_LABELS,
    RESERVED_LABELS,
    is_user_name,
    next_free_name,
)
from vcn_plugin.corrections.operations import (
    NOT_FACE,
    check_name,
    mark_not_face,
    mark_unknown,
    merge_identities,
    move_tracks,
    rename_identity,
    split_tracks,
    undo_last,
)
from vcn_plugin.corrections.views import identity_view, least_certain_view

__all__ = [
    "AUTO_NAME", "EXCLUDED_LABELS", "INFO_KEY", "LOG_VERSION", "NOT_FACE", "RESERVED_LABELS", "Constraints",
    "Correction", "apply_names_after_clustering", "check_name", "correction_log", "get_constraints", "identity_view",
    "is_user_name", "least_certain_view", "mark_not_face", "mark_unknown", "merge_identities", "move_tracks",
    "next_free_name", "rename_identity", "split_tracks", "undo_last",
]  # fmt: skip

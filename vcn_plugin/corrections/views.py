"""Views of the track records for reviewing identities: one identity, or the least certain tracks first."""
from __future__ import annotations

import fiftyone as fo
from fiftyone import ViewField as F

from vcn_plugin.corrections.log import load_log
from vcn_plugin.corrections.names import RESERVED_LABELS
from vcn_plugin.fo import schema
from vcn_plugin.fo.track_records import get_tracks_dataset


def identity_view(dataset: fo.Dataset, name: str) -> fo.DatasetView:
    """The track records of identity ``name`` (one face per track), in story order."""
    tracks = get_tracks_dataset(dataset)
    view = tracks.match(F(schema.label_path(schema.TRACK_IDENTITY)) == name)
    if not len(view):
        known = sorted(n for n in tracks.distinct(schema.label_path(schema.TRACK_IDENTITY)) if n not in RESERVED_LABELS)
        raise ValueError(f"no track has identity '{name}'; identities: {', '.join(known) or 'none yet'}")
    return view.sort_by([(schema.TRACK_VIDEO_ID, 1), (schema.TRACK_FIRST_FRAME, 1)])


def least_certain_view(dataset: fo.Dataset, skip_corrected: bool = True) -> fo.DatasetView:
    """Track records by clustering margin, smallest first: the likeliest mistakes come first.

    ``margin`` (written by the clustering) is the second-best minus the best cluster distance.
    Tracks without a finite margin (Unknown, excluded) are left out, and so are tracks a user
    already corrected when ``skip_corrected``.
    """
    tracks = get_tracks_dataset(dataset)
    view = tracks.match(F(schema.TRACK_MARGIN) > float("-inf")) if tracks.has_sample_field(schema.TRACK_MARGIN) else None
    if view is None or not len(view):
        raise ValueError(f"no track record of '{dataset.name}' has a clustering '{schema.TRACK_MARGIN}': "
                         "run clustering first (it writes each clustered track's margin)")
    if skip_corrected:
        corrected = {k for entry in load_log(dataset) for k in entry.after}
        ids = [sid for sid, v, t in zip(*tracks.values(["id", schema.TRACK_VIDEO_ID, schema.TRACK_INDEX])) if (v, int(t)) in corrected]
        view = view.exclude(ids)
    return view.sort_by(schema.TRACK_MARGIN)

"""Operators to correct identities from the App selection (thin glue over :mod:`vcn_plugin.corrections`).

Selections understood, in either dataset:

- in the track dataset ``<name>-vcn-tracks`` (the face grid): selected samples
  (``ctx.selected``) or selected ``identity`` labels (``ctx.selected_labels``), each one track;
- in the video dataset: selected face boxes (``ctx.selected_labels`` of ``frames.faces``: the
  label id is mapped to its detection's ``index``, the track id).

Opening views: inside the track dataset the operators call ``ctx.ops.set_view``. From the
video dataset, FiftyOne 1.22's ``open_dataset`` operation takes only a dataset name, so the
view is first saved on the track dataset (saved views "vcn identity" / "vcn review"), then
``ctx.ops.open_dataset`` switches to it and ``ctx.ops.set_view(name=...)`` loads the saved
view; if the App applies that before the switch completes, the saved view is one click away
in the App's saved-views menu.
"""
from __future__ import annotations

from typing import ClassVar

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

import vcn_plugin.corrections as corr
from vcn_plugin.core.types import TrackKey
from vcn_plugin.fo import schema
from vcn_plugin.fo.track_records import TRACKS_SUFFIX, get_tracks_dataset

from .common import finish, light_config

NO_SELECTION = ("Select one or more tracks first: faces in the track grid ('{tracks}'), "
                "or face boxes on video frames")
IDENTITY_VIEW_NAME = "vcn identity"
REVIEW_VIEW_NAME = "vcn review"
IDENTITY_LABEL = schema.label_path(schema.TRACK_IDENTITY)


# --------------------------------------------------------------------------- context helpers


def video_dataset(ctx) -> fo.Dataset:
    """The video dataset the App is on, directly or through its track dataset."""
    if ctx.dataset is None:
        raise ValueError("Open a dataset first")
    source = (ctx.dataset.info or {}).get(schema.INFO_VIDEO_DATASET)
    if source:
        return fo.load_dataset(source)
    schema.require_video_dataset(ctx.dataset)
    return ctx.dataset


def _tracks_name(video: fo.Dataset) -> str:
    return f"{video.name}{TRACKS_SUFFIX}"


def selected_tracks(ctx) -> list[TrackKey]:
    """Track keys of the App selection (see the module docstring)."""
    if ctx.dataset is None:
        return []
    if (ctx.dataset.info or {}).get(schema.INFO_VIDEO_DATASET):
        ids = set(ctx.selected) | {lab["sample_id"] for lab in ctx.selected_labels}
        if not ids:
            return []
        videos, tracks = ctx.dataset.select(list(ids)).values([schema.TRACK_VIDEO_ID, schema.TRACK_INDEX])
        return sorted({(v, int(t)) for v, t in zip(videos, tracks)})
    label_ids = [lab["label_id"] for lab in ctx.selected_labels
                 if lab.get("field") in (schema.FACES, schema.frame_path(schema.FACES))]
    if not label_ids:
        return []
    view = ctx.dataset.select_labels(ids=label_ids, fields=schema.frame_path(schema.FACES))
    keys = set()
    for video_id, frames in zip(*view.values(["id", f"{schema.frame_path(schema.FACES)}.detections.index"])):
        for indices in frames:
            keys.update((video_id, int(i)) for i in indices or [] if i is not None)
    return sorted(keys)


def _identities(video: fo.Dataset) -> list[str]:
    labels = video.distinct(f"{schema.frame_path(schema.FACES)}.detections.label") if video.has_frame_field(schema.FACES) else []
    return [n for n in labels if n not in corr.RESERVED_LABELS]


def _current_identities(video: fo.Dataset, keys: list[TrackKey]) -> list[str]:
    """Identities of the selected tracks (from the track records), for defaults."""
    try:
        tracks = get_tracks_dataset(video)
    except ValueError:
        return []
    wanted = set(keys)
    found = {lab for v, t, lab in zip(*tracks.values([schema.TRACK_VIDEO_ID, schema.TRACK_INDEX, IDENTITY_LABEL])) if (v, int(t)) in wanted}
    return sorted(found - set(corr.RESERVED_LABELS))


def _dropdown(names: list[str]) -> types.AutocompleteView:
    view = types.AutocompleteView(allow_user_input=True)
    for name in names:
        view.add_choice(name, label=name)
    return view


def _require_context(ctx, inputs: types.Object) -> fo.Dataset | None:
    """The video dataset, or None after adding an error that blocks execution."""
    try:
        return video_dataset(ctx)
    except ValueError as err:
        inputs.view("bad_dataset", types.Error(label=str(err)), invalid=True, error_message=str(err))
        return None


def _video_and_selection(ctx) -> tuple[fo.Dataset, list[TrackKey]]:
    """The video dataset and the selected tracks; a clear error when nothing is selected."""
    video = video_dataset(ctx)
    keys = selected_tracks(ctx)
    if not keys:
        raise ValueError(NO_SELECTION.format(tracks=_tracks_name(video)))
    return video, keys


def _require_selection(ctx, inputs: types.Object, video: fo.Dataset) -> list[TrackKey]:
    keys = selected_tracks(ctx)
    if keys:
        inputs.view("selection", types.Notice(label=f"{len(keys)} track(s) selected"))
    else:
        msg = NO_SELECTION.format(tracks=_tracks_name(video))
        inputs.view("selection", types.Warning(label=msg), invalid=True, error_message=msg)
    return keys


def _name_input(inputs: types.Object, ctx, name: str, label: str, description: str, choices: list[str],
                default: str | None = None, required: bool = True) -> None:
    """A name field (existing names offered, new ones allowed) that validates as the user types."""
    value = ctx.params.get(name)
    error = None
    if value:
        try:
            corr.check_name(value)
        except ValueError as err:
            error = str(err)
    inputs.str(name, required=required, label=label, description=description, default=default,
               view=_dropdown(choices), invalid=error is not None, error_message=error or "")


def _done(ctx, message: str) -> None:
    if not ctx.delegated:
        ctx.ops.clear_selected_samples()
        ctx.ops.clear_selected_labels()
    finish(ctx, message)


def _show(ctx, view: fo.DatasetView, saved_name: str) -> None:
    tracks = view._root_dataset
    if ctx.dataset is not None and ctx.dataset.name == tracks.name:
        ctx.ops.set_view(view=view)
        return
    tracks.save_view(saved_name, view, overwrite=True)
    ctx.ops.open_dataset(tracks.name)
    ctx.ops.set_view(name=saved_name)


# --------------------------------------------------------------------------- the base class


class CorrectionOperator(foo.Operator):
    """An operator on the identities of the App's video dataset, opened directly or through its
    track dataset. Subclasses name themselves (``op``: name, label, description),
    say whether tracks must be selected (``needs_selection``), add their inputs in :meth:`form`
    and act in :meth:`apply`. ``feedback``: after a correction, ``"clear"`` clears the
    selection then reloads and notifies, ``"reload"`` only reloads and notifies, ``"none"``
    does neither (the operator changed the view itself)."""

    #: (name, label, description) of the operator
    op: ClassVar[tuple[str, str, str]] = ("", "", "")
    needs_selection: ClassVar[bool] = False
    feedback: ClassVar[str] = "clear"

    @property
    def config(self):
        return light_config(*self.op, view_target=False)

    def resolve_input(self, ctx):
        inputs = types.Object()
        video = _require_context(ctx, inputs)
        if video is None:
            return types.Property(inputs)
        if self.needs_selection:
            keys = _require_selection(ctx, inputs, video)
            if keys:
                self.form(ctx, inputs, video, keys)
        elif not self.form(ctx, inputs, video, selected_tracks(ctx)):
            return types.Property(inputs)
        return types.Property(inputs, view=types.View(label=self.op[1]))

    def form(self, ctx, inputs: types.Object, video: fo.Dataset, keys: list[TrackKey]) -> bool:
        """Add the operator's inputs; False when the form cannot be completed (an error is shown)."""
        return True

    def apply(self, ctx, video: fo.Dataset, keys: list[TrackKey]) -> tuple[str, dict]:
        """Carry the operation out: the message to show and the operator's result."""
        raise TypeError(f"{type(self).__name__} defines no apply()")

    def execute(self, ctx):
        if self.needs_selection:
            video, keys = _video_and_selection(ctx)
        else:
            video, keys = video_dataset(ctx), []
        message, result = self.apply(ctx, video, keys)
        if self.feedback == "clear":
            _done(ctx, message)
        elif self.feedback == "reload":
            finish(ctx, message)
        return result


def _outcome(message: str, identity: str, tracks: int) -> tuple[str, dict]:
    """What :meth:`CorrectionOperator.apply` returns for a correction of ``tracks`` tracks."""
    return message, {"identity": identity, "tracks": tracks}


def _identity_dropdown(inputs: types.Object, names: list[str], default: str | None, key: str = "identity",
                       description: str | None = None) -> None:
    """A required choice among the existing identities ``names``."""
    dropdown = types.Dropdown()
    for name in names:
        dropdown.add_choice(name, label=name)
    inputs.enum(key, names, required=True, view=dropdown, label="Identity", default=default, description=description)


# --------------------------------------------------------------------------- corrections


class RenameIdentity(CorrectionOperator):
    op = ("rename_identity", "Rename identity",
          "Give an identity a name (renaming onto an existing name merges the two)")

    def form(self, ctx, inputs, video, keys):
        names = _identities(video)
        if not names:
            msg = "No identities yet: run clustering first"
            inputs.view("none", types.Warning(label=msg), invalid=True, error_message=msg)
            return False
        selected = _current_identities(video, keys)
        _identity_dropdown(inputs, names, selected[0] if len(selected) == 1 else None, key="old",
                           description="Defaults to the identity of the selected tracks")
        _name_input(inputs, ctx, "new", "New name", "A character's name; an existing name merges both", names)
        return True

    def apply(self, ctx, video, keys):
        entry = corr.rename_identity(video, ctx.params["old"], ctx.params["new"])
        return _outcome(f"Renamed '{entry.names['old']}' to '{entry.names['new']}' ({len(entry.after)} tracks)",
                        entry.names["new"], len(entry.after))


class MergeIdentities(CorrectionOperator):
    op = ("merge_identities", "Merge identities",
          "Merge identities into one (select their tracks, or list them)")

    def form(self, ctx, inputs, video, keys):
        names = _identities(video)
        selected = _current_identities(video, keys)
        inputs.list("names", types.String(), required=True, label="Identities to merge",
                    default=selected or None, view=types.AutocompleteView(choices=[types.Choice(n) for n in names]),
                    description="Defaults to the identities of the selected tracks")
        chosen = ctx.params.get("names") or selected
        into = ctx.params.get("into")
        if ctx.params.get("names") is not None and len(set(chosen) | ({into} if into else set())) < 2:
            msg = "Choose two identities or more to merge"
            inputs.view("too_few", types.Warning(label=msg), invalid=True, error_message=msg)
        _name_input(inputs, ctx, "into", "Merge into", "An identity from the list, or a new name",
                    names, default=chosen[0] if chosen else None)
        return True

    def apply(self, ctx, video, keys):
        entry = corr.merge_identities(video, list(ctx.params["names"]), ctx.params["into"])
        return _outcome(f"Merged {', '.join(entry.names['names'])} into '{entry.names['into']}'", entry.names["into"],
                        len(entry.after))


class MoveToIdentity(CorrectionOperator):
    op = ("move_to_identity", "Move tracks to identity",
          "Move the selected tracks to an existing identity or a new one")
    needs_selection = True

    def form(self, ctx, inputs, video, keys):
        _name_input(inputs, ctx, "identity", "Identity", "An existing identity, or type a new name", _identities(video))
        return True

    def apply(self, ctx, video, keys):
        entry = corr.move_tracks(video, keys, ctx.params["identity"])
        target = entry.names["identity"]
        return _outcome(f"Moved {len(entry.after)} track(s) to '{target}'", target, len(entry.after))


class SplitIdentity(CorrectionOperator):
    op = ("split_identity", "Split tracks off",
          "Split the selected tracks off into a new identity")
    needs_selection = True

    def form(self, ctx, inputs, video, keys):
        _name_input(inputs, ctx, "name", "New identity name", "Optional; defaults to the next free person_NN", [],
                    required=False)
        return True

    def apply(self, ctx, video, keys):
        name = corr.split_tracks(video, keys, ctx.params.get("name") or None)
        return _outcome(f"Split {len(keys)} track(s) off into '{name}'", name, len(keys))


class _MarkOperator(CorrectionOperator):
    """Marks the selected tracks with ``mark(video_dataset, track_keys)`` (set by subclasses)."""

    needs_selection = True
    mark = staticmethod(corr.mark_unknown)

    def apply(self, ctx, video, keys):
        entry = self.mark(video, keys)
        label = entry.names["label"]
        return _outcome(f"Marked {len(entry.after)} track(s) {label}", label, len(entry.after))


class MarkUnknown(_MarkOperator):
    op = ("mark_unknown", "Mark tracks Unknown",
          "Label the selected tracks Unknown (strangers); re-clustering leaves them out")
    mark = staticmethod(corr.mark_unknown)


class MarkNotFace(_MarkOperator):
    op = ("mark_not_face", "Mark tracks not a face",
          "Label the selected tracks not_face (false detections); re-clustering leaves them out")
    mark = staticmethod(corr.mark_not_face)


class UndoCorrection(CorrectionOperator):
    op = ("undo_correction", "Undo last correction",
          "Undo the latest identity correction (repeat to go further back)")
    feedback = "reload"

    def form(self, ctx, inputs, video, keys):
        log = corr.correction_log(video)
        if log:
            inputs.view("last", types.Notice(label=f"Undo {log[-1].describe()}"))
        else:
            msg = "No correction to undo"
            inputs.view("empty", types.Warning(label=msg), invalid=True, error_message=msg)
        return True

    def apply(self, ctx, video, keys):
        entry = corr.undo_last(video)
        return f"Undid {entry.op} on {len(entry.after)} track(s)", {"undone": entry.describe()}


# --------------------------------------------------------------------------- views


class ShowIdentity(CorrectionOperator):
    op = ("show_identity", "Show identity",
          "Show one identity as a grid of faces (one per track)")
    feedback = "none"

    def form(self, ctx, inputs, video, keys):
        try:
            names = sorted(get_tracks_dataset(video).distinct(IDENTITY_LABEL))
        except ValueError as err:
            inputs.view("no_tracks", types.Warning(label=str(err)), invalid=True, error_message=str(err))
            return False
        selected = _current_identities(video, keys)
        _identity_dropdown(inputs, names, selected[0] if selected else (names[0] if names else None))
        return True

    def apply(self, ctx, video, keys):
        view = corr.identity_view(video, ctx.params["identity"])
        _show(ctx, view, IDENTITY_VIEW_NAME)
        return "", {"identity": ctx.params["identity"], "tracks": len(view)}


class ReviewUncertain(CorrectionOperator):
    op = ("review_uncertain", "Review uncertain tracks",
          "Tracks the clustering was least sure about first (smallest margin)")
    feedback = "none"

    def form(self, ctx, inputs, video, keys):
        inputs.bool("skip_corrected", default=True, label="Skip corrected tracks",
                    description="Leave out tracks you already corrected")
        return True

    def apply(self, ctx, video, keys):
        view = corr.least_certain_view(video, skip_corrected=bool(ctx.params.get("skip_corrected", True)))
        _show(ctx, view, REVIEW_VIEW_NAME)
        return "", {"tracks": len(view)}


CORRECTION_OPERATORS = [
    RenameIdentity, MergeIdentities, MoveToIdentity, SplitIdentity, MarkUnknown, MarkNotFace,
    UndoCorrection, ShowIdentity, ReviewUncertain,
]

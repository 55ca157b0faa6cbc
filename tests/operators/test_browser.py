"""The FiftyOne App end to end, in a real browser: Chromium driven by Playwright.

One App server (``fiftyone app launch --remote``, with this repo as a plugin) on the sample clip
after stage 1 and clustering (FINCH on the dlib embeddings: six shots, sixteen tracks). The tests
run in file order on one page, as a user would: look at the video, browse the operators, then
rename a person from the track grid and check the datasets changed.

Needs Chromium (``bash scripts/install_browser.sh``) and Playwright for Python (the ``dev``
extra); skipped without them unless ``VCN_REQUIRE_BROWSER=1`` (CI), which makes that a failure.
``VCN_SCREENSHOTS=docs/screenshots`` saves the README's screenshots.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.browser_helpers import (
    CHROMIUM_ARGS,
    UI_TIMEOUT_MS,
    VIEWPORT,
    AppServer,
    chromium_path,
    diagnostics,
    dismiss_popups,
    expand_first_sample,
    free_port,
    listed_operator_labels,
    open_dataset,
    open_operator_browser,
    operator_prompt,
    plugins_dir_with_repo,
    repo_operators,
    save_screenshot,
    select_tile,
    tile,
)
from tests.evaluation.test_gt_io import new_name

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NEW_NAME = "Sam"


def _missing(reason: str) -> None:
    if os.environ.get("VCN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (VCN_REQUIRE_BROWSER=1 makes this a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> Path:
    path = chromium_path()
    if path is None:
        _missing("Chromium not found at $VCN_CHROMIUM or /usr/bin/chromium: run `bash scripts/install_browser.sh`")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("Playwright for Python is missing: pip install -e '.[dev]'")
    return path


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def video(chromium):
    """An empty persistent video dataset (the App server reads it from another process); deleted
    afterwards with its track dataset."""
    import fiftyone as fo

    dataset = fo.Dataset(new_name())
    dataset.persistent = True
    # a colour per identity; set before the App starts, whose session takes it from the dataset
    dataset.app_config.color_scheme = fo.ColorScheme(color_by="value")
    dataset.save()
    try:
        yield dataset
    finally:
        for name in (dataset.name, f"{dataset.name}-vcn-tracks"):
            if fo.dataset_exists(name):
                fo.delete_dataset(name)


@pytest.fixture(scope="module")
def app_server(video, work_dir):
    """The App server on :func:`video`, started first so it boots while :func:`processed` fills
    the dataset. The test process is connected to its database already: the App attaches to it."""
    env = {
        **os.environ,
        "FIFTYONE_PLUGINS_DIR": str(plugins_dir_with_repo(work_dir)),
        "FIFTYONE_DEFAULT_DATASET_DIR": str(work_dir / "fiftyone"),
        "FIFTYONE_DO_NOT_TRACK": "true",
    }
    server = AppServer(port=free_port(), log_path=work_dir / "app-server.log", env=env, dataset=video.name)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def processed(app_server, video, work_dir):
    """:func:`video` holding the sample clip after stage 1 and clustering, and its track dataset."""
    import fiftyone as fo

    from vcn_plugin.benchmark.sample_clip import make_sample_clip
    from vcn_plugin.fo.datasets import import_videos
    from vcn_plugin.fo.track_records import get_tracks_dataset
    from vcn_plugin.steps.cluster import cluster_identities
    from vcn_plugin.steps.detect import detect_faces

    old_dir = fo.config.default_dataset_dir
    fo.config.default_dataset_dir = str(work_dir / "fiftyone")  # track thumbnails land here
    try:
        clip = work_dir / "clip.mp4"
        make_sample_clip(clip, shot_seconds=0.8)
        import_videos([clip], video)
        detect_faces(video)
        cluster_identities(video, method="finch")
    finally:
        fo.config.default_dataset_dir = old_dir
    return video, get_tracks_dataset(video)


@pytest.fixture(scope="module")
def app(app_server, processed) -> AppServer:
    started = time.monotonic()
    app_server.wait_ready()
    print(f"App ready {time.monotonic() - started:.1f} s after the data")
    return app_server


@pytest.fixture(scope="module")
def page(chromium, work_dir):
    """One page in a fresh browser profile for the whole module (the remote App session keeps
    its state across pages anyway)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.set_default_timeout(UI_TIMEOUT_MS)
            page = context.new_page()
            dismiss_popups(page)
            yield page
        finally:
            browser.close()


def test_video_shows_the_face_boxes(page, app, processed, work_dir):
    from playwright.sync_api import expect

    video, _ = processed
    n_faces = video.count("frames.faces.detections")
    assert n_faces > 0
    with diagnostics(page, app, work_dir, "video"):
        open_dataset(page, app.url, video.name, 1)
        expand_first_sample(page)
        # the expanded sample's sidebar counts the video's face boxes
        expect(page.get_by_text(str(n_faces), exact=True).filter(visible=True).first).to_be_visible()
        page.wait_for_timeout(1500)  # the player draws the first frame's boxes on a canvas
        save_screenshot(page, "1-video-faces-by-identity")
        page.keyboard.press("Escape")


def test_operator_browser_lists_every_vcn_operator(page, app, processed, work_dir):
    from playwright.sync_api import expect

    video, _ = processed
    expected = repo_operators()
    assert expected, "operators.OPERATORS is empty"
    unprefixed = [label for _, label in expected if not label.startswith("vcn: ")]
    assert not unprefixed, f"operator labels must start with 'vcn: ' so users find them all: {unprefixed}"
    with diagnostics(page, app, work_dir, "operator-browser"):
        open_dataset(page, app.url, video.name, 1)
        open_operator_browser(page, "vcn:")
        expect(page.get_by_text(expected[0][1], exact=True)).to_be_visible()
        listed = set(listed_operator_labels(page))
        missing = [f"{name} ({label!r})" for name, label in expected if label not in listed]
        assert not missing, (f"not in the App's operator browser: {missing}; each operator must be in "
                             f"OPERATORS (operators/__init__.py) and under `operators:` in fiftyone.yml; "
                             f"listed: {sorted(listed)}")
        save_screenshot(page, "2-operator-browser")
        page.keyboard.press("Escape")


def test_rename_identity_from_the_track_grid(page, app, processed, work_dir):
    from playwright.sync_api import expect

    from vcn_plugin.corrections import RESERVED_LABELS, correction_log
    from vcn_plugin.fo.track_records import check_consistency, frame_identities

    video, tracks = processed
    names = [name for name, _ in repo_operators()]
    assert "rename_identity" in names, f"rename_identity is not in operators.OPERATORS: {names}"
    before = frame_identities(video)
    sizes = Counter(name for name in before.values() if name not in RESERVED_LABELS)
    assert sizes, f"the clustering named no identity: {Counter(before.values())}"
    old = min(sizes, key=lambda name: (-sizes[name], name))  # the largest identity
    renamed = {key for key, name in before.items() if name == old}

    with diagnostics(page, app, work_dir, "rename"):
        open_dataset(page, app.url, tracks.name, len(tracks))
        select_tile(page, old)
        save_screenshot(page, "3-track-grid")
        open_operator_browser(page, "vcn: Rename")
        page.get_by_text("vcn: Rename identity", exact=True).click()
        prompt = operator_prompt(page)
        expect(prompt.get_by_text("Rename identity", exact=True)).to_be_visible()
        # the selected face's identity is the form's default
        expect(prompt.get_by_role("combobox").first).to_have_text(old)
        new_name_box = prompt.get_by_placeholder("Type or select a value")
        new_name_box.fill(NEW_NAME)
        new_name_box.press("Enter")
        expect(new_name_box).to_have_value(NEW_NAME)
        execute = prompt.get_by_role("button", name="Execute", exact=True)
        expect(execute).to_be_enabled()
        save_screenshot(page, "4-rename-form")
        execute.click()
        # the operator reloads the App: the grid shows the new name, the old one is gone
        expect(tile(page, NEW_NAME)).to_be_visible()
        expect(page.get_by_title(f"identity: {old}", exact=True)).to_have_count(0)
        save_screenshot(page, "5-rename-result")

    video.reload()
    after = frame_identities(video)
    assert {key for key, name in after.items() if name == NEW_NAME} == renamed
    assert {key: name for key, name in after.items() if key not in renamed} == {
        key: name for key, name in before.items() if key not in renamed}
    tracks.reload()
    assert Counter(tracks.values("identity.label"))[NEW_NAME] == len(renamed)
    assert check_consistency(video) == []
    last = correction_log(video)[-1]
    assert (last.op, set(last.after), set(last.after.values())) == ("rename", renamed, {NEW_NAME})

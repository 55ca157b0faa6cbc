"""Helpers of the real-browser test (tests/operators/test_browser.py): the App server, Chromium, App actions.

The App is the one users run, ``fiftyone app launch --remote``, started in a subprocess that
sees the plugin through ``FIFTYONE_PLUGINS_DIR``; Playwright drives Debian's Chromium
(``executable_path``: Playwright never downloads a browser here; ``scripts/install_browser.sh``
installs Chromium). Selectors are text and role based where the App shows text; face tiles,
which the App draws on canvases, are found by their ``identity: NAME`` title.
"""
from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR_NAME = "videoclusternet"

#: Chromium in a container without GPU or network: no sandbox (root), no background traffic
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 900}
#: seconds; the App's first page load compiles its queries, slow on 2 busy cores
APP_START_TIMEOUT = 150.0
UI_TIMEOUT_MS = 90_000

SELECT_TILE_TITLE = "Click to select sample, Shift+Click to select a range"
OPERATOR_SEARCH_PLACEHOLDER = "Search operations by name..."
OPERATOR_PROMPT = '[data-cy="operators-prompt-modal"]'
MODAL = '[data-cy="modal"]'  # the expanded-sample modal


def chromium_path() -> Path | None:
    """Chromium's executable: ``$VCN_CHROMIUM`` or Debian's ``/usr/bin/chromium``; None if absent."""
    path = Path(os.environ.get("VCN_CHROMIUM", "/usr/bin/chromium"))
    return path if path.is_file() and os.access(path, os.X_OK) else None


def free_port() -> int:
    """A TCP port free on localhost right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def plugins_dir_with_repo(parent: Path) -> Path:
    """A FiftyOne plugins folder holding a symlink to this repo (which holds ``fiftyone.yml``)."""
    plugins = parent / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / PLUGIN_DIR_NAME
    if not link.exists():
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    return plugins


def repo_operators() -> list[tuple[str, str]]:
    """``(name, label)`` of every listed operator in the repo's ``operators.OPERATORS``.

    Loaded the way FiftyOne loads the plugin: through the root ``__init__.py``'s loader.
    Operators configured ``unlisted`` are left out: the App's browser does not show them.
    """
    spec = importlib.util.spec_from_file_location("vcn_plugin_root_for_tests", REPO_ROOT / "__init__.py")
    root = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root)
    configs = [cls().config for cls in root._load_operators().OPERATORS]
    return [(c.name, c.label) for c in configs if not c.unlisted]


@dataclass
class AppServer:
    """``fiftyone app launch --remote`` in a subprocess, stopped with every process it started."""

    port: int
    log_path: Path
    env: dict[str, str]
    dataset: str | None = None
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cli = "import sys; from fiftyone.core.cli import main; sys.argv[0] = 'fiftyone'; sys.exit(main())"
        cmd = [sys.executable, "-c", cli, "app", "launch"]
        cmd += [self.dataset] if self.dataset else []
        cmd += ["--remote", "--address", "127.0.0.1", "--port", str(self.port), "--wait", "-1"]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
                                        cwd=self.log_path.parent, start_new_session=True)

    def wait_ready(self, timeout: float = APP_START_TIMEOUT) -> float:
        """Seconds until the App answered HTTP 200; raises with the log tail when it does not."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the App server exited with code {self.process.returncode}\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        return time.monotonic() - start
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(1.0)
        raise TimeoutError(f"the App did not answer on {self.url} within {timeout:.0f} s\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no App server log)"
        return "App server log (last lines):\n" + "\n".join(text[-lines:])

    def stop(self, grace: float = 3.0) -> None:
        """Stop the launcher and its descendants (FiftyOne's server service runs in its own
        session, so the whole tree is collected first, then terminated, then killed)."""
        if self.process is None:
            return
        import psutil

        try:
            root = psutil.Process(self.process.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for proc in tree:
            try:
                proc.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(tree, timeout=grace)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=grace)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
        self.process = None


# --------------------------------------------------------------------------- App actions


def dismiss_popups(page) -> None:
    """Close the App's start-up popup (an Enterprise advert with a Dismiss button) whenever it
    shows up and blocks an action."""
    page.add_locator_handler(page.get_by_role("button", name="Dismiss"), lambda button: button.click())


def open_dataset(page, app_url: str, name: str, n_samples: int, attempts: int = 3) -> None:
    """Open dataset ``name`` in the grid (no sample expanded) and wait for its sample count.

    A remote App session pushes its own state to a page that connects, which can replace the
    dataset of the URL just after the page showed it; the page is reopened until it stays.
    """
    from playwright.sync_api import expect

    noun = "sample" if n_samples == 1 else "samples"
    count = page.get_by_text(f"{n_samples} {noun}", exact=True)
    for attempt in range(attempts):
        page.goto(f"{app_url}/datasets/{name}", wait_until="load", timeout=UI_TIMEOUT_MS)
        expect(count).to_be_visible(timeout=UI_TIMEOUT_MS)
        page.wait_for_timeout(2_000)
        if f"/datasets/{name}" in page.url and count.is_visible():
            break
        print(f"the App left '{name}' for {page.url} after showing it; reopening it")
        if attempt == attempts - 1:
            raise AssertionError(f"the App left dataset '{name}' for {page.url} right after opening it")
    # the session keeps its last state: close a sample that an earlier page expanded
    for _ in range(3):
        if page.locator(MODAL).count() == 0:
            break
        page.keyboard.press("Escape")
        page.wait_for_timeout(500)


def expand_first_sample(page, attempts: int = 5) -> None:
    """Expand the grid's first sample and wait for the sample modal to show.

    On a loaded machine the grid can re-render between showing a tile and taking the click,
    which then expands nothing; the click is retried until the modal shows.
    """
    from playwright.sync_api import Error, expect

    modal = page.locator(MODAL)
    for _ in range(attempts):
        try:
            page.get_by_title("Click to expand").first.click(timeout=UI_TIMEOUT_MS)
            modal.first.wait_for(timeout=10_000)
            return
        except Error:
            page.wait_for_timeout(1_000)  # the tile was re-rendered under the click: try again
    expect(modal.first).to_be_visible(timeout=1_000)


def tile(page, identity: str):
    """The grid tile of a track whose ``identity`` label is ``identity`` (first if several)."""
    return page.locator('[data-cy="looker"]').filter(has=page.get_by_title(f"identity: {identity}", exact=True)).first


def select_tile(page, identity: str, attempts: int = 10) -> None:
    """Tick the selection box of a grid tile of ``identity`` (the box shows while hovered).

    The grid re-renders while it settles and its DOM order is not the visual order, so one
    tile element is hovered and clicked together, retried until the App counts a selection.
    """
    from playwright.sync_api import Error, expect

    tile(page, identity).wait_for(timeout=UI_TIMEOUT_MS)
    for _ in range(attempts):
        try:
            element = tile(page, identity).element_handle(timeout=UI_TIMEOUT_MS)
            element.hover(timeout=5_000)
            element.query_selector(f'[title="{SELECT_TILE_TITLE}"]').click(timeout=5_000)
            checkbox = element.query_selector("input[type=checkbox]")
            if checkbox is not None and checkbox.is_checked():
                return
        except (Error, AttributeError):
            pass  # detached by a re-render, or the box was not shown yet: try again
        page.wait_for_timeout(1_000)
    expect(tile(page, identity).locator("input[type=checkbox]")).to_be_checked(timeout=1_000)


def open_operator_browser(page, search: str) -> None:
    """Open the operator browser (the backtick key) and type ``search`` in its search box."""
    from playwright.sync_api import expect

    box = page.get_by_placeholder(OPERATOR_SEARCH_PLACEHOLDER)
    for _ in range(3):
        page.keyboard.press("`")
        try:
            expect(box).to_be_visible(timeout=10_000)
            break
        except AssertionError:
            page.mouse.click(5, VIEWPORT["height"] - 5)  # focus the App, then retry the shortcut
    box.fill(search)


def listed_operator_labels(page, prefix: str = "vcn: ") -> list[str]:
    """Labels of the operator browser's entries that start with ``prefix``."""
    return page.get_by_text(re.compile("^" + re.escape(prefix))).all_inner_texts()


def operator_prompt(page):
    return page.locator(OPERATOR_PROMPT)


@contextmanager
def diagnostics(page, server: AppServer, out_dir: Path, name: str) -> Iterator[None]:
    """On failure: save the page's screenshot and HTML to ``out_dir``, print the browser's
    console errors and the App server's log tail (pytest shows them under the failure)."""
    errors: list[str] = []

    def on_console(msg) -> None:
        if msg.type == "error":
            errors.append(f"console.{msg.type}: {msg.text}")

    def on_page_error(exc) -> None:
        errors.append(f"page error: {exc}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    try:
        yield
    except BaseException:
        out_dir.mkdir(parents=True, exist_ok=True)
        shot, html = out_dir / f"{name}-failure.png", out_dir / f"{name}-failure.html"
        try:
            page.screenshot(path=str(shot), full_page=True)
            html.write_text(page.content())
            print(f"page at failure: {page.url}\n  screenshot {shot}\n  html {html}")
        except Exception as err:  # the page itself may be gone
            print(f"could not capture the page: {err}")
        print("browser errors:\n  " + "\n  ".join(errors[-20:]) if errors else "no browser console errors")
        print(server.log_tail())
        raise
    finally:
        page.remove_listener("console", on_console)
        page.remove_listener("pageerror", on_page_error)


def save_screenshot(page, name: str) -> Path | None:
    """Save a README screenshot to ``$VCN_SCREENSHOTS/<name>.png`` (relative to the repo root)
    when that variable is set; returns the path written."""
    folder = os.environ.get("VCN_SCREENSHOTS")
    if not folder:
        return None
    path = Path(folder) if Path(folder).is_absolute() else REPO_ROOT / folder
    path.mkdir(parents=True, exist_ok=True)
    target = path / f"{name}.png"
    page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] - 5)  # no hover effects in the picture
    page.wait_for_timeout(300)
    page.screenshot(path=str(target))
    return target

"""Symbolication of JavaScript stack frames on ingestion, with Sentry's ``symbolic``.

For each frame of a JavaScript event, the source map is found the way Sentry finds it:
by the debug ID the SDK reports for the frame's file (``debug_meta.images``, type
``sourcemap``, ``code_file`` = the frame's file), else by the event's release and dist and
the file's URL (``~/_next/static/chunks/x.js``) in the bundles uploaded for that release,
following the minified file's ``sourcemap`` header. The frame then shows the original file,
line, column and function (``symbolic`` resolves the original name from the minified
source where it can, else :mod:`controltower.ingest.scopes` names the enclosing function of
the original source) with five lines of source context either side; the minified frame is kept beside
it under ``minified``. The event is regrouped on the original frames.

Symbolication never loses an event: when no map is found, or the lookup fails, the frame
stays as it came.
"""

from __future__ import annotations

import io
import logging
import posixpath
import re
import zipfile
from collections import OrderedDict
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from controltower.clock import system_clock
from controltower.ingest.event import ParsedEvent
from controltower.ingest.grouping import fingerprint_for
from controltower.ingest.scopes import enclosing_function
from controltower.ingest.scrub import scrub_text
from controltower.store import Store
from controltower.store.models.sourcemaps import ArtifactBundle, ArtifactFile

log = logging.getLogger("controltower.ingest")

JS_PLATFORMS = frozenset({"javascript", "node"})
CONTEXT_LINES = 5
_WEBPACK = re.compile(r"^webpack://[^/]*/")
_PRESENCE_TTL = 10.0
_KEEP_BUNDLES = 8
_KEEP_MAPS = 64


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def remember(self, key: Any, value: Any) -> Any:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value


def original_filename(source: str) -> str:
    """``webpack://_N_E/./app/page.tsx`` -> ``app/page.tsx``."""
    name = _WEBPACK.sub("", source)
    while name.startswith("./"):
        name = name[2:]
    return name


def url_of(abs_path: str) -> str:
    """The bundle URL of a frame's file: ``http://host/_next/x.js?v`` -> ``~/_next/x.js``."""
    parts = urlsplit(abs_path)
    path = parts.path if parts.scheme else abs_path.split("?", 1)[0]
    if parts.scheme == "app":
        path = parts.path
    return "~" + (path if path.startswith("/") else "/" + path)


class Symbolicator:
    """Applies uploaded source maps to events; caches bundles and parsed maps."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._presence: dict[int, tuple[float, bool]] = {}
        self._bundles = _Lru(_KEEP_BUNDLES)
        self._maps = _Lru(_KEEP_MAPS)

    def apply(self, events: list[ParsedEvent]) -> list[ParsedEvent]:
        out = []
        for event in events:
            try:
                out.append(self.event(event))
            except Exception:
                log.exception("symbolicating event %s failed; kept as sent", event.event_id)
                out.append(event)
        return out

    def _has_maps(self, project_id: int) -> bool:
        now = system_clock.monotonic()
        cached = self._presence.get(project_id)
        if cached is not None and now - cached[0] < _PRESENCE_TTL:
            return cached[1]
        with self.store.session() as session:
            found = session.scalar(
                select(ArtifactFile.id).where(ArtifactFile.project_id == project_id).limit(1)
            )
        self._presence[project_id] = (now, found is not None)
        return found is not None

    def event(self, event: ParsedEvent) -> ParsedEvent:
        chain = event.data.get("exception")
        if not chain or not isinstance(chain, list):
            return event
        if event.platform not in JS_PLATFORMS or not self._has_maps(event.project_id):
            return event
        images = _debug_images(event.data)
        dist = str(event.data.get("dist") or "")
        changed = False
        new_chain = []
        for exception in chain:
            frames = []
            for frame in exception.get("frames") or []:
                mapped = self.frame(event.project_id, frame, images, event.release, dist)
                changed = changed or mapped is not frame
                frames.append(mapped)
            new_chain.append({**exception, "frames": frames})
        if not changed:
            return event
        data = {**event.data, "exception": new_chain}
        template = str(data.get("template") or event.message)
        custom = data.get("fingerprint") if isinstance(data.get("fingerprint"), list) else None
        return replace(
            event,
            data=data,
            fingerprint=fingerprint_for(new_chain, template, custom, platform=event.platform),
        )

    def frame(
        self,
        project_id: int,
        frame: dict[str, Any],
        images: dict[str, str],
        release: str,
        dist: str,
    ) -> dict[str, Any]:
        if "minified" in frame:  # already symbolicated (a batch written again)
            return frame
        line, column = frame.get("lineno"), frame.get("colno")
        if not isinstance(line, int) or not isinstance(column, int) or line < 1 or column < 1:
            return frame
        names = [str(frame.get(key) or "") for key in ("abs_path", "filename")]
        debug_id = next((images[name] for name in names if name in images), "")
        found = self._locate(project_id, debug_id, names, release, dist)
        if found is None:
            return frame
        view, minified = found
        from symbolic.sourcemap import SourceView

        minified_view = SourceView.from_bytes(minified) if minified is not None else None
        function = str(frame.get("function") or "")
        token = (
            view.lookup(line - 1, column - 1, function, minified_view)
            if function and minified_view is not None
            else view.lookup(line - 1, column - 1)
        )
        if token is None or token.src is None:
            return frame
        source = original_filename(token.src)
        lines = _source_lines(view, token.src_id)
        named = token.function_name or (
            enclosing_function("\n".join(lines), token.src_line, token.src_col) if lines else None
        )
        mapped: dict[str, Any] = {
            "filename": source,
            "abs_path": token.src,
            "lineno": token.src_line + 1,
            "colno": token.src_col + 1,
            "function": named or _unminified(function),
            "in_app": "node_modules/" not in token.src and not token.src.startswith("webpack/"),
            "minified": {
                key: frame[key]
                for key in ("filename", "abs_path", "lineno", "colno", "function")
                if key in frame
            },
        }
        if lines:
            at = token.src_line
            if 0 <= at < len(lines):
                mapped["context_line"] = scrub_text(lines[at][:1000])
                mapped["pre_context"] = [
                    scrub_text(text[:1000]) for text in lines[max(0, at - CONTEXT_LINES) : at]
                ]
                mapped["post_context"] = [
                    scrub_text(text[:1000]) for text in lines[at + 1 : at + 1 + CONTEXT_LINES]
                ]
        return mapped

    def _locate(
        self, project_id: int, debug_id: str, names: list[str], release: str, dist: str
    ) -> tuple[Any, bytes | None] | None:
        """The parsed source map and the minified source for a frame's file, or None."""
        with self.store.session() as session:
            rows: list[ArtifactFile] = []
            if debug_id:
                rows = list(
                    session.scalars(
                        select(ArtifactFile)
                        .where(
                            ArtifactFile.project_id == project_id,
                            ArtifactFile.debug_id == debug_id,
                        )
                        .order_by(ArtifactFile.bundle_id.desc())
                    )
                )
            if not rows and release:
                urls = [url_of(name) for name in names if name]
                minified = session.scalars(
                    select(ArtifactFile)
                    .where(
                        ArtifactFile.project_id == project_id,
                        ArtifactFile.release == release,
                        ArtifactFile.dist == dist,
                        ArtifactFile.url.in_(urls),
                    )
                    .order_by(ArtifactFile.bundle_id.desc())
                ).first()
                if minified is not None:
                    rows = [minified]
                    if minified.sourcemap:
                        target = posixpath.normpath(
                            posixpath.join(posixpath.dirname(minified.url), minified.sourcemap)
                        )
                        rows += list(
                            session.scalars(
                                select(ArtifactFile).where(
                                    ArtifactFile.bundle_id == minified.bundle_id,
                                    ArtifactFile.url == target,
                                )
                            )
                        )
            wanted = {row.kind: (row.bundle_id, row.path) for row in reversed(rows)}
        if "source_map" not in wanted:
            return None
        view = self._map(*wanted["source_map"])
        if view is None:
            return None
        minified_source = None
        if "minified_source" in wanted:
            minified_source = self._file(*wanted["minified_source"])
        return view, minified_source

    def _bundle(self, bundle_id: int) -> zipfile.ZipFile | None:
        if bundle_id in self._bundles:
            self._bundles.move_to_end(bundle_id)
            cached: zipfile.ZipFile = self._bundles[bundle_id]
            return cached
        with self.store.session() as session:
            data = session.scalar(select(ArtifactBundle.data).where(ArtifactBundle.id == bundle_id))
        if data is None:
            return None
        return self._bundles.remember(bundle_id, zipfile.ZipFile(io.BytesIO(data)))  # type: ignore[no-any-return]

    def _file(self, bundle_id: int, path: str) -> bytes | None:
        bundle = self._bundle(bundle_id)
        if bundle is None:
            return None
        try:
            return bundle.read(path)
        except KeyError:
            return None

    def _map(self, bundle_id: int, path: str) -> Any:
        key = (bundle_id, path)
        if key in self._maps:
            self._maps.move_to_end(key)
            return self._maps[key]
        data = self._file(bundle_id, path)
        if data is None:
            return None
        from symbolic.sourcemap import SourceMapView

        try:
            view = SourceMapView.from_json_bytes(data)
        except Exception:
            log.warning("the source map %s of bundle %d cannot be parsed", path, bundle_id)
            view = None
        return self._maps.remember(key, view)


def _unminified(function: str) -> str:
    """The frame's own function name unless it is a minifier's (``z``, ``Object.a``)."""
    last = function.rsplit(".", 1)[-1]
    return function if len(last) > 2 else "?"


def _source_lines(view: Any, source_id: int | None) -> list[str]:
    if source_id is None:
        return []
    contents = view.get_source_contents(source_id)
    return contents.splitlines() if contents else []


def _debug_images(data: dict[str, Any]) -> dict[str, str]:
    meta = data.get("debug_meta")
    images = meta.get("images") if isinstance(meta, dict) else None
    found: dict[str, str] = {}
    for image in images if isinstance(images, list) else []:
        if not isinstance(image, dict) or image.get("type") != "sourcemap":
            continue
        code_file, debug_id = image.get("code_file"), image.get("debug_id")
        if isinstance(code_file, str) and isinstance(debug_id, str):
            found[code_file] = debug_id.strip().lower()
    return found

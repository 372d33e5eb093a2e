"""`songrec simulate`: a listener and a labeler that talk to a running API (loopback only).

The listener plays playlists the model has not seen: the playlists of tracks released from
`since_year` on (train on tracks up to 2018, simulate 2019-2020), or the evaluation playlists.
For each request it sends the visible part of a playlist (catalog ids the API knows, audio
features for the tracks it does not), then posts feedback on what came back: `play` (and, for
some, `like`) for recommended tracks the listener really has (the hidden part of the
playlist), `skip` for the others. The labeler posts the true rows (genre and playlist included)
of the new tracks in a listener's playlist, the ones sent and the ones held, to /labels after a
delay, as a curator labelling new releases would. Traffic is bounded in count and time.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from songrec.contract.features import release_year
from songrec.core.errors import SongrecError
from songrec.core.hashing import stable_uniform
from songrec.core.progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListenerPlaylist:
    playlist_id: str
    visible: pd.DataFrame  # source rows of the tracks sent
    held: pd.DataFrame  # source rows of the tracks the listener has but does not send

    @property
    def hidden(self) -> frozenset[str]:
        return frozenset(self.held["track_id"])


@dataclass
class SimulationReport:
    requests: int = 0
    answered: int = 0
    client_errors: int = 0
    server_errors: int = 0
    failed: int = 0
    feedback: Counter[str] = field(default_factory=Counter)
    labels: int = 0
    recommended: Counter[str] = field(default_factory=Counter)  # per model version
    hits: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": self.answered,
            "client_errors": self.client_errors,
            "server_errors": self.server_errors,
            "failed": self.failed,
            "feedback": dict(self.feedback),
            "labels": self.labels,
            "hit_rate_by_version": {
                version: round(self.hits[version] / count, 4)
                for version, count in self.recommended.items()
                if count
            },
            "seconds": round(self.seconds, 1),
        }

    def problem(self) -> str | None:
        """Why this run says nothing about the API, if it does not: unreachable, or mostly failing."""
        broken = self.failed + self.server_errors
        if self.requests and not self.answered:
            return f"none of {self.requests} requests was answered ({self.failed} could not reach the API)"
        if broken * 2 > self.requests:
            return f"{broken} of {self.requests} requests failed (unreachable or 5xx)"
        return None


def require_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SongrecError(f"songrec simulate only sends traffic to a loopback API, not {url}")


def new_release_playlists(
    tracks: pd.DataFrame, since_year: int, seed: int, visible_share: float = 0.5, min_tracks: int = 6
) -> list[ListenerPlaylist]:
    """Playlists made of the tracks released from `since_year` on, split into sent and held."""
    recent = tracks[release_year(tracks["track_album_release_date"]) >= since_year]
    recent = recent.drop_duplicates(["playlist_id", "track_id"])
    playlists = []
    for playlist_id, rows in recent.groupby("playlist_id", sort=True):
        if len(rows) < min_tracks:
            continue
        draw = stable_uniform(rows["track_id"], seed)
        sent = draw < np.quantile(draw, visible_share)
        playlists.append(ListenerPlaylist(str(playlist_id), rows[sent], rows[~sent]))
    return playlists


def evaluation_playlists(eval_playlists: pd.DataFrame, tracks: pd.DataFrame) -> list[ListenerPlaylist]:
    """The evaluation playlists: their visible part is sent, their hidden part is what they hold."""
    rows_by_id = tracks.drop_duplicates("track_id").set_index("track_id", drop=False)
    playlists = []
    for playlist_id, group in eval_playlists.groupby("playlist_id", sort=True):
        visible = [t for t in group.loc[group["part"] == "visible", "track_id"] if t in rows_by_id.index]
        hidden = [t for t in group.loc[group["part"] == "hidden", "track_id"] if t in rows_by_id.index]
        if visible and hidden:
            playlists.append(
                ListenerPlaylist(str(playlist_id), rows_by_id.loc[visible], rows_by_id.loc[hidden])
            )
    return playlists


def feature_row(row: pd.Series, audio_features: Sequence[str], integers: frozenset[str]) -> dict[str, Any]:
    """A track as the API's `tracks` items take it: audio features, year and artist."""
    values: dict[str, Any] = {
        name: int(row[name]) if name in integers else float(row[name]) for name in audio_features
    }
    values["year"] = int(str(row["track_album_release_date"])[:4])
    if isinstance(row.get("track_artist"), str):
        values["track_artist"] = row["track_artist"]
    return values


def label_row(row: pd.Series) -> dict[str, Any]:
    """A track's true row (the source format) for /labels."""
    return {
        key: (None if pd.isna(value) else value.item() if hasattr(value, "item") else value)
        for key, value in row.items()
    }


class Simulator:
    def __init__(
        self,
        api_url: str,
        playlists: Sequence[ListenerPlaylist],
        audio_features: Sequence[str],
        integer_features: frozenset[str],
        rate: float = 10.0,
        max_requests: int = 200,
        max_seconds: float = 60.0,
        k: int = 20,
        label_delay: float = 5.0,
        like_share: float = 0.5,
        seed: int = 0,
        timeout: float = 10.0,
        labeler_token: str | None = None,
    ) -> None:
        require_loopback(api_url)
        if not playlists:
            raise SongrecError("no playlists to simulate: check --since-year and the data")
        self.api = api_url.rstrip("/")
        self.playlists = list(playlists)
        self.audio_features = tuple(audio_features)
        self.integers = integer_features
        self.rate = rate
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.k = k
        self.label_delay = label_delay
        self.like_share = like_share
        self.random = random.Random(seed)
        self.timeout = timeout
        self.labeler_token = labeler_token  # /labels needs it; without it, no labels are sent
        self.unknown: dict[str, set[str]] = {}  # per model version: ids the API did not know
        self.to_label: dict[str, tuple[float, pd.Series]] = {}
        self.labelled: set[str] = set()
        self.known_ids: set[str] = set()  # ids some answer showed the API knows

    def run(self) -> SimulationReport:
        import requests

        report = SimulationReport()
        session = requests.Session()
        started = time.monotonic()
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        version = ""
        with Progress(self.max_requests, f"traffic to {self.api}", log, unit="requests") as progress:
            while report.requests < self.max_requests and time.monotonic() - started < self.max_seconds:
                due = started + report.requests * interval
                if (pause := due - time.monotonic()) > 0:
                    time.sleep(pause)
                playlist = self.playlists[self.random.randrange(len(self.playlists))]
                sent = report.requests
                version = self._listen(session, playlist, version, report)
                self._label(session, report, force=False)
                progress.update(
                    report.requests - sent,
                    answered=report.answered,
                    failed=report.failed + report.server_errors,
                    feedback=sum(report.feedback.values()),
                    labels=report.labels,
                )
        self._label(session, report, force=time.monotonic() - started < self.max_seconds)
        report.seconds = time.monotonic() - started
        log.info("simulation: %s", report.summary())
        return report

    def _listen(
        self, session: Any, playlist: ListenerPlaylist, version: str, report: SimulationReport
    ) -> str:
        unknown = self.unknown.setdefault(version, set())
        rows = playlist.visible
        known_ids = [t for t in rows["track_id"] if t not in unknown]
        body = {
            "track_ids": known_ids,
            "tracks": [
                feature_row(r, self.audio_features, self.integers)
                for _, r in rows.iterrows()
                if r["track_id"] in unknown
            ],
            "k": self.k,
        }
        response = self._post(session, "/recommend", body, report)
        if response is not None and response.status_code == 422:
            # The API names the ids it does not know: send those tracks by their features.
            unknown |= set(_unknown_from_error(response.json()))
            retry = {
                **body,
                "track_ids": [t for t in rows["track_id"] if t not in unknown],
                "tracks": [
                    feature_row(r, self.audio_features, self.integers)
                    for _, r in rows.iterrows()
                    if r["track_id"] in unknown
                ],
            }
            response = self._post(session, "/recommend", retry, report)
        if response is None or response.status_code != 200:
            return version
        answer = response.json()
        version = str(answer["model_version"])
        unknown_now = set(answer.get("unknown_track_ids", []))
        self.known_ids.update(t for t in known_ids if t not in unknown_now)
        self.unknown.setdefault(version, set()).update(answer.get("unknown_track_ids", []))
        if answer.get("unknown_track_ids"):
            # New tracks: the labeler will label every new track of this listener's playlist.
            for _, row in pd.concat([rows, playlist.held]).iterrows():
                if row["track_id"] not in self.labelled and row["track_id"] not in self.known_ids:
                    self.to_label.setdefault(row["track_id"], (time.monotonic(), row))
        report.answered += 1
        for item in answer["recommendations"]:
            hit = item["track_id"] in playlist.hidden
            report.recommended[version] += 1
            report.hits[version] += int(hit)
            events = ["play"] + (["like"] if hit and self.random.random() < self.like_share else [])
            for event in events if hit else ["skip"]:
                feedback = {"request_id": answer["request_id"], "track_id": item["track_id"], "event": event}
                if self._post(session, "/feedback", feedback, report, count=False) is not None:
                    report.feedback[event] += 1
        return version

    def _label(self, session: Any, report: SimulationReport, force: bool) -> None:
        """Post the true rows of new tracks whose labelling delay has passed (all, when forced)."""
        now = time.monotonic()
        ready = [tid for tid, (seen, _) in self.to_label.items() if force or now - seen >= self.label_delay]
        if not ready:
            return
        if self.labeler_token is None:
            if self.to_label:
                log.warning("%d labels not sent: /labels needs SONGREC_LABELER_TOKEN", len(self.to_label))
            self.to_label.clear()
            return
        if force and self.label_delay > 0:
            time.sleep(min(self.label_delay, 1.0))
        rows = [label_row(self.to_label.pop(track_id)[1]) for track_id in ready]
        auth = {"Authorization": f"Bearer {self.labeler_token}"}
        response = self._post(session, "/labels", {"tracks": rows}, report, count=False, headers=auth)
        if response is not None and response.status_code < 300:
            report.labels += len(rows)
            self.labelled.update(ready)

    def _post(
        self,
        session: Any,
        path: str,
        body: dict[str, Any],
        report: SimulationReport,
        count: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Any:
        import requests

        if count:
            report.requests += 1
        try:
            response = session.post(f"{self.api}{path}", json=body, timeout=self.timeout, headers=headers)
        except requests.RequestException as exc:
            report.failed += 1
            log.warning("POST %s failed: %s", path, exc)
            return None
        if response.status_code >= 500:
            report.server_errors += 1
        elif response.status_code >= 400 and not (path == "/recommend" and response.status_code == 422):
            report.client_errors += 1
            log.warning("POST %s -> %d %s", path, response.status_code, response.text[:300])
        return response


def _unknown_from_error(payload: dict[str, Any]) -> list[str]:
    """The unknown ids a 422 of /recommend lists."""
    found = payload.get("unknown_track_ids")
    if isinstance(found, list):
        return [str(t) for t in found]
    for item in payload.get("errors", payload.get("detail", [])) or []:
        if isinstance(item, dict) and isinstance(item.get("unknown_track_ids"), list):
            return [str(t) for t in item["unknown_track_ids"]]
    return []

// songrec's page: search the catalog, build a playlist, get recommendations and predictions.
// Plain JavaScript against the same API as any client; nothing loads from elsewhere.
"use strict";

(function () {
  const $ = (selector) => document.querySelector(selector);
  const playlist = new Map(); // track_id -> {track_id, track_name, track_artist}
  let lastRequestId = null;

  function showError(message) {
    const box = $("#error");
    box.textContent = message;
    box.hidden = !message;
  }

  async function call(method, url, body) {
    const options = { method, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(data.message || `${method} ${url}: HTTP ${response.status}`);
    }
    return data;
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function label(track) {
    return `${track.track_name || "(untitled)"} — ${track.track_artist || "unknown artist"}`;
  }

  // ------------------------------------------------------------------ search

  function renderResults(tracks) {
    const list = $("#search-results");
    list.replaceChildren();
    if (!tracks.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "No track or artist matches.";
      list.appendChild(li);
      return;
    }
    // The catalog holds the same song more than once (a single and its album, a re-release):
    // results that would look alike say which album they are from, and then which id.
    const song = (track) => `${track.track_name}|${track.track_artist}|${track.year}`;
    const count = (key, value) => tracks.filter((other) => key(other) === value).length;
    for (const track of tracks) {
      const li = document.createElement("li");
      li.dataset.trackId = track.track_id;
      let text = `${label(track)} (${track.genre}, ${track.year ?? "?"})`;
      if (count(song, song(track)) > 1) {
        text += ` · from ${track.track_album_name || "an unnamed album"}`;
        const sameAlbum = (other) => `${song(other)}|${other.track_album_name}`;
        if (count(sameAlbum, sameAlbum(track)) > 1) text += ` · id …${track.track_id.slice(-6)}`;
      }
      li.appendChild(document.createTextNode(text));
      const add = document.createElement("button");
      add.type = "button";
      add.className = "add";
      add.textContent = playlist.has(track.track_id) ? "Added" : "Add";
      add.disabled = playlist.has(track.track_id);
      add.addEventListener("click", () => {
        playlist.set(track.track_id, track);
        add.textContent = "Added";
        add.disabled = true;
        renderPlaylist();
      });
      li.appendChild(add);
      list.appendChild(li);
    }
  }

  $("#search-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = $("#search-input").value.trim();
    if (!q) return;
    showError("");
    try {
      const data = await call("GET", `/tracks?q=${encodeURIComponent(q)}`);
      renderResults(data.tracks);
    } catch (error) {
      showError(error.message);
    }
  });

  // ------------------------------------------------------------------ playlist

  function renderPlaylist() {
    const list = $("#playlist");
    list.replaceChildren();
    for (const track of playlist.values()) {
      const li = document.createElement("li");
      li.dataset.trackId = track.track_id;
      li.appendChild(document.createTextNode(label(track)));
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.textContent = "Remove";
      remove.addEventListener("click", () => {
        playlist.delete(track.track_id);
        renderPlaylist();
      });
      li.appendChild(remove);
      list.appendChild(li);
    }
    $("#playlist-count").textContent = `(${playlist.size})`;
    $("#playlist-empty").hidden = playlist.size > 0;
    $("#recommend-button").disabled = playlist.size === 0;
  }

  // ------------------------------------------------------------------ answers

  function renderRecommendations(data) {
    lastRequestId = data.request_id;
    $("#request-id").textContent = data.request_id;
    $("#answer-version").textContent = data.model_version;
    $("#model-version").textContent = data.model_version;
    const body = $("#recommendations tbody");
    body.replaceChildren();
    for (const track of data.recommendations) {
      const row = document.createElement("tr");
      row.dataset.trackId = track.track_id;
      cell(row, track.rank, "number");
      cell(row, track.track_name);
      cell(row, track.track_artist);
      cell(row, track.genre);
      cell(row, track.score.toFixed(3), "number");
      const link = document.createElement("a");
      link.href = track.spotify_url;
      link.textContent = "Spotify";
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      cell(row, "").appendChild(link);
      const feedback = cell(row, "");
      for (const event of ["like", "dislike"]) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = `feedback ${event}`;
        // Words, not emoji: a machine without an emoji font shows empty boxes.
        button.textContent = event === "like" ? "Like" : "Dislike";
        button.title = `${event} this recommendation`;
        button.addEventListener("click", async () => {
          try {
            await call("POST", "/feedback", { request_id: lastRequestId, track_id: track.track_id, event });
            feedback.textContent = event === "like" ? "liked" : "disliked";
          } catch (error) {
            showError(error.message);
          }
        });
        feedback.appendChild(button);
      }
      body.appendChild(row);
    }
    const unknown = $("#unknown-ids");
    unknown.hidden = !data.unknown_track_ids.length;
    unknown.textContent = `Not in the catalog: ${data.unknown_track_ids.join(", ")}`;
    $("#recommendations-section").hidden = false;
  }

  function renderPredictions(genre, popularity) {
    const body = $("#predictions tbody");
    body.replaceChildren();
    genre.predictions.forEach((prediction, i) => {
      const row = document.createElement("tr");
      const track = playlist.get(prediction.track_id) || { track_name: prediction.track_id };
      cell(row, label(track));
      cell(row, prediction.genre);
      cell(row, prediction.probabilities[prediction.genre].toFixed(2), "number");
      cell(row, popularity.predictions[i].popularity.toFixed(0), "number");
      body.appendChild(row);
    });
    $("#predictions-section").hidden = false;
  }

  $("#recommend-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!playlist.size) return;
    showError("");
    const trackIds = [...playlist.keys()];
    const k = Number.parseInt($("#k-input").value, 10);
    const request = { track_ids: trackIds, k };
    const cap = $("#artist-cap").value;  // empty: the model's default
    if (cap) request.max_per_artist = Number.parseInt(cap, 10);
    const button = $("#recommend-button");
    button.disabled = true;
    try {
      const [recommended, genre, popularity] = await Promise.all([
        call("POST", "/recommend", request),
        call("POST", "/predict/genre", { track_ids: trackIds }),
        call("POST", "/predict/popularity", { track_ids: trackIds }),
      ]);
      renderRecommendations(recommended);
      renderPredictions(genre, popularity);
    } catch (error) {
      showError(error.message);
    } finally {
      button.disabled = playlist.size === 0;
    }
  });

  renderPlaylist();
})();

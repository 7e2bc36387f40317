"use strict";
// The live page: one event stream from the console (a snapshot, then decisions, alerts, adjudications and the
// camera wall once a second), drawn with textContent only, so nothing a gateway sends is read as HTML.
(async function () {
  const E = Console.element;
  const DECISION_ROWS = 200;
  const cameras = new Set();
  let filter = "";
  await Console.session();

  const rows = document.getElementById("decision-rows");
  const select = document.getElementById("camera-filter");
  select.addEventListener("change", () => {
    filter = select.value;
    for (const row of rows.children) row.hidden = Boolean(filter) && row.dataset.camera !== filter;
  });

  function knowCamera(camera) {
    if (!camera || cameras.has(camera)) return;
    cameras.add(camera);
    select.append(E("option", {value: camera, text: camera}));
  }

  function decision(event) {
    knowCamera(event.camera);
    const row = E("tr", {class: `decision ${event.decision}`, "data-camera": event.camera},
      E("td", {text: Console.clock(event.time)}), E("td", {text: event.camera}), E("td", {text: event.track}),
      E("td", {class: "verdict", text: event.decision}), E("td", {class: "nik", text: event.nik}),
      E("td", {text: event.score === null ? "" : event.score.toFixed(3)}),
      E("td", {text: event.threshold.toFixed(3)}), E("td", {text: event.reason}),
      E("td", {text: event.latency_ms.toFixed(0)}));
    row.hidden = Boolean(filter) && event.camera !== filter;
    rows.prepend(row);
    while (rows.children.length > DECISION_ROWS) rows.lastElementChild.remove();
  }

  function wall(tiles) {
    const list = document.getElementById("camera-list");
    if (!tiles.length) return;
    list.replaceChildren(...tiles.sort((a, b) => a.camera.localeCompare(b.camera)).map((tile) => {
      knowCamera(tile.camera);
      const last = tile.last_decision;
      return E("div", {class: `camera ${tile.online ? "online" : "offline"}`, "data-camera": tile.camera},
        E("h3", {text: tile.camera}),
        E("span", {class: "state", text: tile.online ? "online" : "offline"}),
        E("dl", {},
          E("dt", {text: "faces / min"}), E("dd", {class: "faces-per-minute", text: String(tile.faces_per_minute)}),
          E("dt", {text: "latency p50"}),
          E("dd", {text: tile.latency_p50_ms === null ? "–" : `${tile.latency_p50_ms.toFixed(0)} ms`}),
          E("dt", {text: "last"}),
          E("dd", {class: "last-decision", text: last ? `${last.decision} ${last.nik} ${Console.clock(last.time)}`
                                                      : "–"})));
    }));
  }

  function countOpen() {
    const open = document.querySelectorAll("#alert-list .alert.open").length;
    document.getElementById("alerts-open").textContent = open ? `${open} open` : "";
  }

  function adjudicated(update) {
    const card = document.querySelector(`#alert-list [data-alert-id="${CSS.escape(update.alert_id)}"]`);
    if (!card) return;
    card.classList.remove("open");
    card.classList.add(update.adjudication.toLowerCase());
    card.querySelector(".outcome").textContent = `${update.adjudication} by ${update.adjudicated_by}`;
    for (const control of card.querySelectorAll("button, textarea")) control.disabled = true;
    countOpen();
  }

  function alert(event) {
    const list = document.getElementById("alert-list");
    list.querySelector(".empty")?.remove();
    if (list.querySelector(`[data-alert-id="${CSS.escape(event.alert_id)}"]`)) return;
    const note = E("textarea", {class: "note", placeholder: "what you saw (optional)", maxlength: "1024"});
    const outcome = E("p", {class: "outcome", role: "status"});
    const decide = (adjudication) => async () => {
      outcome.textContent = "sending…";
      const answer = await Console.post(`/api/alerts/${encodeURIComponent(event.alert_id)}/adjudication`,
                                        {adjudication, note: note.value});
      const body = await answer.json().catch(() => ({}));
      if (answer.ok) adjudicated({alert_id: event.alert_id, adjudication, adjudicated_by: body.adjudicated_by});
      else outcome.textContent = body.error || `refused (${answer.status})`;
    };
    const card = E("article", {class: `alert open priority-${event.priority}`, "data-alert-id": event.alert_id,
                               "data-request-id": event.request_id},
      event.crop ? E("img", {class: "crop", src: event.crop, alt: `face that matched ${event.label}`})
                 : E("div", {class: "crop none", text: "no crop"}),
      E("div", {class: "details"},
        E("h3", {text: event.label}),
        E("p", {class: "list", text: `${event.watchlist} · ${event.priority} priority · entry ${event.entry_id}` +
                                     (event.case_reference ? ` · case ${event.case_reference}` : "")}),
        E("p", {class: "score", text: `score ${event.score.toFixed(3)} (threshold ${event.threshold.toFixed(3)})`}),
        E("p", {text: `${event.camera} · track ${event.track || "–"} · ${Console.clock(event.time)}`}),
        note,
        E("div", {class: "buttons"},
          E("button", {type: "button", class: "confirm", text: "Confirm"}),
          E("button", {type: "button", class: "reject", text: "Reject"})),
        outcome));
    card.querySelector(".confirm").addEventListener("click", decide("CONFIRMED"));
    card.querySelector(".reject").addEventListener("click", decide("DISMISSED"));
    list.prepend(card);
    // when the card was first painted, for measuring how long an alert takes to reach the screen
    requestAnimationFrame(() => { card.dataset.shownAt = String(performance.timeOrigin + performance.now()); });
    if (event.adjudication) adjudicated(event);
    countOpen();
  }

  function banner(text) {
    const shown = document.getElementById("gateways");
    shown.hidden = !text;
    shown.textContent = text;
  }

  function gateways(states) {
    banner(Object.entries(states).filter(([, problem]) => problem)
      .map(([gateway, problem]) => `gateway ${gateway} unreachable: ${problem}`).join("; "));
  }

  const source = new EventSource("/api/events");
  // the browser reconnects by itself; a session that has ended (idle, signed out, console restarted) goes to
  // the sign-in page instead of retrying forever
  source.addEventListener("error", async () => {
    const answer = await fetch("/api/session", {credentials: "same-origin"}).catch(() => null);
    if (answer && answer.status === 401) window.location.assign("/login");
    else banner("the live stream broke (a gateway may be unable to record this view in its audit log); " +
                "reconnecting");
  });
  source.addEventListener("snapshot", (message) => {
    const snapshot = JSON.parse(message.data);
    rows.replaceChildren();
    snapshot.decisions.forEach(decision);
    snapshot.alerts.forEach(alert);
    wall(snapshot.cameras);
    gateways(snapshot.gateways);
  });
  source.addEventListener("decision", (message) => decision(JSON.parse(message.data)));
  source.addEventListener("alert", (message) => alert(JSON.parse(message.data)));
  source.addEventListener("adjudicated", (message) => adjudicated(JSON.parse(message.data)));
  source.addEventListener("cameras", (message) => wall(JSON.parse(message.data)));
  source.addEventListener("gateways", (message) => gateways(JSON.parse(message.data)));
})();

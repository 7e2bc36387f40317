"use strict";
// Analytics: the gateways' counts drawn as tables and small SVG charts (bars and a heat map), written here
// rather than taken from a charting library: four simple shapes, no build step, nothing fetched.
(async function () {
  const E = Console.element;
  const SVG = "http://www.w3.org/2000/svg";
  const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  await Console.session();
  let data = null;

  function svg(tag, attributes = {}, text = "") {
    const made = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, String(value));
    if (text) made.textContent = text;
    return made;
  }

  function sum(rows, field) {
    return rows.reduce((total, row) => total + (row[field] || 0), 0);
  }

  function selected() {
    const camera = document.getElementById("camera").value;
    return data.hours.filter((row) => !camera || row.camera === camera);
  }

  function cameraTable() {
    const byCamera = new Map();
    for (const row of data.hours) {
      if (!byCamera.has(row.camera)) byCamera.set(row.camera, []);
      byCamera.get(row.camera).push(row);
    }
    const line = (name, rows, attributes) => {
      const faces = sum(rows, "faces");
      return E("tr", attributes,
        E("th", {text: name}), E("td", {class: "faces", text: String(faces)}),
        E("td", {class: "people", text: String(sum(rows, "tracks"))}),
        E("td", {class: "identified", text: Console.percent(sum(rows, "matched"), faces)}),
        E("td", {text: Console.percent(sum(rows, "not_matched"), faces)}),
        E("td", {class: "rejected", text: Console.percent(sum(rows, "rejected"), faces)}),
        E("td", {text: Console.percent(sum(rows, "no_face"), faces)}));
    };
    const body = document.querySelector("#camera-table tbody");
    body.replaceChildren(...[...byCamera].sort().map(([camera, rows]) => line(camera, rows, {"data-camera": camera})),
                         line("all", data.hours, {class: "total"}));
  }

  function hoursChart() {
    const rows = selected();
    const byHour = new Map();
    for (const row of rows) {
      const kept = byHour.get(row.hour) || {matched: 0, not_matched: 0, other: 0};
      kept.matched += row.matched;
      kept.not_matched += row.not_matched;
      kept.other += row.rejected + row.no_face + row.invalid + row.overloaded;
      byHour.set(row.hour, kept);
    }
    const since = Date.parse(data.since), until = Date.parse(data.until);
    const hours = Math.max(1, Math.ceil((until - since) / 3600e3));
    const width = 900, height = 180, left = 40, bottom = 20;
    const most = Math.max(1, ...[...byHour.values()].map((h) => h.matched + h.not_matched + h.other));
    const chart = svg("svg", {viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "faces per hour"});
    const step = (width - left) / hours;
    chart.append(svg("text", {x: 0, y: 12, class: "axis"}, String(most)), svg("text", {x: 0, y: height - bottom,
                                                                                     class: "axis"}, "0"));
    for (const [hour, counts] of byHour) {
      const x = left + Math.floor((Date.parse(hour) - since) / 3600e3) * step;
      let y = height - bottom;
      for (const [part, value] of [["matched", counts.matched], ["not-matched", counts.not_matched],
                                   ["not-searched", counts.other]]) {
        const tall = (height - bottom - 4) * value / most;
        y -= tall;
        const bar = svg("rect", {x, y, width: Math.max(1, step - 1), height: tall, class: part});
        bar.append(svg("title", {}, `${new Date(hour).toLocaleString()}: ${value} ${part.replace("-", " ")}`));
        chart.append(bar);
      }
    }
    chart.append(svg("text", {x: left, y: height - 4, class: "axis"}, new Date(since).toLocaleString()),
                 svg("text", {x: width, y: height - 4, class: "axis end"}, new Date(until).toLocaleString()));
    document.getElementById("hours-chart").replaceChildren(chart);
  }

  function heatMap() {
    const grid = Array.from({length: 7}, () => new Array(24).fill(0));
    for (const row of selected()) {
      const moment = new Date(row.hour);
      grid[(moment.getDay() + 6) % 7][moment.getHours()] += row.tracks;
    }
    const most = Math.max(1, ...grid.flat());
    const cell = 30, left = 40, top = 16;
    const chart = svg("svg", {viewBox: `0 0 ${left + 24 * cell} ${top + 7 * cell}`, role: "img",
                              "aria-label": "visits by day of the week and hour"});
    for (let hour = 0; hour < 24; hour += 3) {
      chart.append(svg("text", {x: left + hour * cell, y: 11, class: "axis"}, `${hour}:00`));
    }
    grid.forEach((hours, day) => {
      chart.append(svg("text", {x: 0, y: top + day * cell + 20, class: "axis"}, DAYS[day]));
      hours.forEach((visits, hour) => {
        const square = svg("rect", {x: left + hour * cell, y: top + day * cell, width: cell - 2, height: cell - 2,
                                    class: "heat", "fill-opacity": (0.06 + 0.94 * visits / most).toFixed(3)});
        square.append(svg("title", {}, `${DAYS[day]} ${hour}:00–${hour + 1}:00: ${visits} people`));
        chart.append(square);
      });
    });
    document.getElementById("heat-map").replaceChildren(chart);
  }

  function reasonsChart() {
    const totals = new Map();
    for (const row of selected()) {
      for (const [reason, count] of Object.entries(row.reasons)) totals.set(reason, (totals.get(reason) || 0) + count);
    }
    const top = [...totals].sort((a, b) => b[1] - a[1]).slice(0, 8);
    const target = document.getElementById("reasons-chart");
    if (!top.length) {
      target.replaceChildren(E("p", {class: "empty", text: "No face was rejected."}));
      return;
    }
    const most = top[0][1], row = 24, width = 440, left = 170;
    const chart = svg("svg", {viewBox: `0 0 ${width} ${row * top.length}`, role: "img",
                              "aria-label": "top reasons for rejection"});
    top.forEach(([reason, count], position) => {
      const y = position * row;
      chart.append(svg("text", {x: 0, y: y + 16, class: "axis"}, reason),
                   svg("rect", {x: left, y: y + 4, height: row - 8, width: Math.max(1, (width - left - 50) * count / most),
                                class: "not-searched"}),
                   svg("text", {x: width, y: y + 16, class: "axis end"}, String(count)));
    });
    target.replaceChildren(chart);
  }

  function watchlistTable() {
    const lists = new Map();
    for (const day of data.watchlist_days) {
      if (!lists.has(day.watchlist)) lists.set(day.watchlist, []);
      lists.get(day.watchlist).push(day);
    }
    const body = document.querySelector("#watchlist-table tbody");
    if (!lists.size) {
      body.replaceChildren(E("tr", {}, E("td", {colspan: "6", class: "empty", text: "No alerts in this period."})));
      return;
    }
    body.replaceChildren(...[...lists].sort().map(([name, days]) => {
      const confirmed = sum(days, "confirmed"), dismissed = sum(days, "dismissed");
      const most = Math.max(...days.map((day) => day.alerts));
      const spark = svg("svg", {viewBox: `0 0 ${days.length * 8} 20`, class: "spark", role: "img",
                                "aria-label": "alerts a day"});
      days.forEach((day, position) => {
        const bar = svg("rect", {x: position * 8, y: 20 - 20 * day.alerts / most, width: 6,
                                 height: 20 * day.alerts / most, class: "alerted"});
        bar.append(svg("title", {}, `${day.day}: ${day.alerts} alerts`));
        spark.append(bar);
      });
      return E("tr", {"data-watchlist": name}, E("th", {text: name}),
        E("td", {class: "alerts", text: String(sum(days, "alerts"))}), E("td", {text: String(confirmed)}),
        E("td", {text: String(dismissed)}),
        E("td", {text: confirmed + dismissed ? Console.percent(confirmed, confirmed + dismissed) : "not adjudicated"}),
        E("td", {}, spark));
    }));
  }

  function auditTable() {
    const totals = new Map();
    for (const day of data.audit_days) {
      const key = `${day.operation}\u0000${day.decision}`;
      totals.set(key, (totals.get(key) || 0) + day.records);
    }
    document.querySelector("#audit-table tbody").replaceChildren(...[...totals].sort().map(([key, records]) => {
      const [operation, decision] = key.split("\u0000");
      return E("tr", {"data-operation": operation, "data-decision": decision}, E("td", {text: operation}),
               E("td", {text: decision}), E("td", {class: "records", text: String(records)}));
    }));
  }

  function draw() {
    cameraTable();
    hoursChart();
    heatMap();
    reasonsChart();
    watchlistTable();
    auditTable();
  }

  async function load() {
    const error = document.getElementById("analytics-error");
    const answer = await fetch(`/api/analytics?days=${document.getElementById("days").value}`,
                               {credentials: "same-origin"});
    const body = await answer.json().catch(() => ({}));
    if (!answer.ok) {
      error.textContent = body.error || `analytics refused (${answer.status})`;
      return;
    }
    error.textContent = "";
    data = body;
    document.getElementById("period").textContent =
      `${new Date(data.since).toLocaleString()} – ${new Date(data.until).toLocaleString()}`;
    const select = document.getElementById("camera");
    const known = new Set([...select.options].map((option) => option.value));
    for (const camera of new Set(data.hours.map((row) => row.camera))) {
      if (!known.has(camera)) select.append(E("option", {value: camera, text: camera}));
    }
    draw();
    document.body.dataset.loaded = "true";
  }

  document.getElementById("days").addEventListener("change", load);
  document.getElementById("camera").addEventListener("change", draw);
  await load();
})();

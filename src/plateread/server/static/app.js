// plateread dashboard: new reads appear at the top of the reads table as they are stored
// (server-sent events). Rows are built with textContent: plate text and camera names are input.
"use strict";

(function () {
  const table = document.querySelector("table#reads[data-live]");
  if (!table || !window.EventSource) return;
  const body = table.tBodies[0];
  const badge = document.getElementById("live");
  const MAX_ROWS = 200;

  function cell(row, text) {
    const td = row.insertCell();
    if (text !== undefined && text !== null) td.textContent = text;
    return td;
  }

  function addRead(r) {
    if (body.querySelector('tr[data-id="' + Number(r.id) + '"]')) return;
    const row = body.insertRow(0);
    row.dataset.id = String(r.id);
    row.className = "new" + (r.watchlist && r.watchlist.length ? " hit" : "");
    cell(row, String(r.first_seen).replace("T", " ").slice(0, 19));
    cell(row, r.camera || "");
    const link = document.createElement("a");
    link.className = "plate";
    link.href = "/reads/" + Number(r.id);
    link.textContent = r.plate;
    cell(row).appendChild(link);
    cell(row, Number(r.score).toFixed(2));
    const crop = cell(row);
    if (r.crop_url) {
      const img = document.createElement("img");
      img.className = "crop";
      img.src = r.crop_url;
      img.alt = "crop of " + r.plate;
      crop.appendChild(img);
    }
    const hits = cell(row);
    (r.watchlist || []).forEach(function (name) {
      const span = document.createElement("span");
      span.className = "badge";
      span.textContent = name;
      hits.appendChild(span);
    });
    while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
    const empty = document.querySelector("p.empty");
    if (empty) empty.remove();
  }

  const source = new EventSource("/events");
  source.addEventListener("open", function () { if (badge) badge.hidden = false; });
  source.addEventListener("error", function () { if (badge) badge.hidden = true; });
  source.addEventListener("read", function (e) {
    try { addRead(JSON.parse(e.data)); } catch (err) { /* a malformed event is skipped */ }
  });
})();

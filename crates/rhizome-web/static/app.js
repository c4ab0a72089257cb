// Rhizome's page script: local times, live "something new" notice on the feed, and upload
// progress. The page works without it.
"use strict";

function localTimes() {
  for (const t of document.querySelectorAll("time[datetime]")) {
    const ms = Number(t.getAttribute("datetime"));
    if (Number.isFinite(ms) && ms > 0) {
      t.textContent = new Date(ms).toLocaleString(undefined, {
        dateStyle: "medium", timeStyle: "short",
      });
      t.title = new Date(ms).toISOString();
    }
  }
}

function liveFeed() {
  const live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  const start = Number(live.dataset.events);
  const source = new EventSource("/events/feed");
  source.addEventListener("count", (e) => {
    const n = Number(e.data) - start;
    if (n > 0) {
      live.textContent = "";
      const a = document.createElement("a");
      a.href = "/";
      a.id = "live-refresh";
      a.textContent = n + (n === 1 ? " new event" : " new events") + " arrived: refresh";
      live.appendChild(a);
      live.hidden = false;
    }
  });
  window.addEventListener("beforeunload", () => source.close());
}

function uploadProgress() {
  const form = document.getElementById("upload");
  if (!form || !window.fetch || !window.EventSource) return;
  form.addEventListener("submit", async (e) => {
    const input = document.getElementById("import-file");
    const file = input.files && input.files[0];
    if (!file) return;
    e.preventDefault();
    const bar = document.getElementById("import-progress");
    const status = document.getElementById("import-status");
    const csrf = form.querySelector("input[name=csrf]").value;
    const job = Array.from(crypto.getRandomValues(new Uint8Array(16)),
      (b) => b.toString(16).padStart(2, "0")).join("");
    bar.hidden = false;
    status.textContent = "Reading the stick…";
    const events = new EventSource("/events/import?job=" + job);
    events.addEventListener("progress", (ev) => {
      const [done, total] = ev.data.split("/").map(Number);
      if (total > 0) {
        bar.value = Math.min(100, Math.round((100 * done) / total));
        status.textContent = "Imported " + (done / 1048576).toFixed(1) + " of " +
          (total / 1048576).toFixed(1) + " MB";
      } else {
        status.textContent = "Imported " + (done / 1048576).toFixed(1) + " MB";
      }
    });
    events.addEventListener("done", () => events.close());
    try {
      const answer = await fetch("/import/raw?job=" + job, {
        method: "POST",
        headers: { "X-CSRF-Token": csrf, "Content-Type": "application/octet-stream" },
        body: file,
      });
      const html = await answer.text();
      events.close();
      const doc = new DOMParser().parseFromString(html, "text/html");
      const main = doc.getElementById("main");
      if (main) {
        document.getElementById("main").replaceWith(document.importNode(main, true));
        localTimes();
      }
    } catch (err) {
      events.close();
      status.textContent = "The upload failed: " + err;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes();
  liveFeed();
  uploadProgress();
});

// The Flow dashboard's only script. Pages work without it; it adds live updates of a
// run's page (server-sent events, then the page's main part fetched again and swapped
// in place), local times, "select all" for the runs table, and a confirmation before
// cancelling. It loads nothing from elsewhere.
"use strict";

function localTimes(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) {
      t.title = t.textContent;
      t.textContent = d.toLocaleString();
    }
  }
}

function selectAll(root) {
  const all = root.querySelector("#select-all");
  if (!all) return;
  all.addEventListener("change", () => {
    for (const box of root.querySelectorAll("input.select-run")) box.checked = all.checked;
  });
}

function confirmations(root) {
  for (const form of root.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  }
}

function enhance(root) {
  localTimes(root);
  selectAll(root);
  confirmations(root);
}

// A page whose main part names an event stream (`data-live`) follows it: each event
// fetches the main part again (at most one fetch in flight; one more queued), until an
// event says the run ended.
function follow() {
  const main = document.getElementById("main");
  const live = main && main.querySelector("[data-live]");
  if (!live || typeof EventSource === "undefined") return;
  const source = new EventSource(live.dataset.live);
  let busy = false, again = false;
  const refresh = async () => {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const url = new URL(window.location.href);
      url.searchParams.set("part", "main");
      const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (answer.ok) {
        const open = new Set([...main.querySelectorAll("details[open][data-key]")].map((d) => d.dataset.key));
        main.innerHTML = await answer.text();
        for (const d of main.querySelectorAll("details[data-key]")) if (open.has(d.dataset.key)) d.open = true;
        enhance(main);
      }
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  };
  source.onmessage = refresh;
  for (const kind of ["run_started", "step_started", "step_succeeded", "step_failed", "timer_set",
    "timer_fired", "child_started", "run_resumed", "log"]) {
    source.addEventListener(kind, refresh);
  }
  for (const kind of ["run_completed", "run_failed", "run_cancelled"]) {
    source.addEventListener(kind, () => { source.close(); refresh(); });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  enhance(document);
  follow();
});

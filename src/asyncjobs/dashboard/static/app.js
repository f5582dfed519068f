// asyncjobs dashboard: live updates, "5 s ago" times and confirmations. No dependencies.
"use strict";

(function () {
  const POLL_MS = 2000;
  const LIVE_HEADER = "X-Asyncjobs-Live";
  const NOW_HEADER = "X-Asyncjobs-Now";
  const UNITS = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];

  let serverNow = null; // the server's clock at `receivedAt`
  let receivedAt = Date.now();
  let lastHtml = null;
  let timer = null;

  function live() {
    return document.getElementById("live");
  }

  // -- times ---------------------------------------------------------------------------

  function now() {
    return serverNow === null ? Date.now() : serverNow + (Date.now() - receivedAt);
  }

  function rough(seconds) {
    for (const [size, unit] of UNITS) {
      if (seconds >= size) return Math.floor(seconds / size) + " " + unit;
    }
    return "1 s";
  }

  function describe(element) {
    const at = Date.parse(element.getAttribute("datetime"));
    if (Number.isNaN(at)) return;
    const delta = (now() - at) / 1000;
    let text;
    if (element.classList.contains("since")) text = rough(Math.max(delta, 1));
    else if (Math.abs(delta) < 1) text = "just now";
    else text = delta > 0 ? rough(delta) + " ago" : "in " + rough(-delta);
    if (element.textContent !== text) element.textContent = text;
  }

  function refreshTimes() {
    document.querySelectorAll("time.ago, time.since").forEach(describe);
  }

  // -- live updates --------------------------------------------------------------------

  function setState(name, text) {
    const state = document.getElementById("live-state");
    if (!state) return;
    state.hidden = false;
    state.className = "live-state " + name;
    state.querySelector(".live-text").textContent = text;
  }

  function busy() {
    const dialog = document.getElementById("confirm-dialog");
    const selection = window.getSelection && String(window.getSelection());
    return document.hidden || (dialog && dialog.open) || Boolean(selection);
  }

  function swap(region, html) {
    const open = new Set();
    region.querySelectorAll("details[id][open]").forEach((d) => open.add(d.id));
    const closed = new Set();
    region.querySelectorAll("details[id]:not([open])").forEach((d) => closed.add(d.id));
    const seen = new Set();
    region.querySelectorAll("[data-job]").forEach((row) => seen.add(row.dataset.job));
    region.innerHTML = html;
    region.querySelectorAll("details[id]").forEach((d) => {
      if (open.has(d.id)) d.open = true;
      else if (closed.has(d.id)) d.open = false;
    });
    if (seen.size) {
      region.querySelectorAll("[data-job]").forEach((row) => {
        if (!seen.has(row.dataset.job)) row.classList.add("fresh");
      });
    }
  }

  async function poll() {
    const region = live();
    if (!region || busy()) return schedule();
    try {
      const response = await fetch(window.location.href, {
        headers: { [LIVE_HEADER]: "1" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (!response.ok) {
        setState("lost", response.status === 401 ? "Signed out" : "Reconnecting");
        return schedule();
      }
      const html = await response.text();
      const stamp = Date.parse(response.headers.get(NOW_HEADER) || "");
      if (!Number.isNaN(stamp)) {
        serverNow = stamp;
        receivedAt = Date.now();
      }
      if (html !== lastHtml && !busy()) {
        swap(region, html);
        lastHtml = html;
      }
      setState("", "Live");
    } catch (error) {
      setState("lost", "Reconnecting");
    }
    refreshTimes();
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(poll, POLL_MS);
  }

  // -- confirmations -------------------------------------------------------------------

  function confirmThen(form) {
    const dialog = document.getElementById("confirm-dialog");
    const question = form.dataset.confirm;
    if (!dialog || typeof dialog.showModal !== "function") {
      if (window.confirm(question)) submitConfirmed(form);
      return;
    }
    document.getElementById("confirm-question").textContent = question;
    const yes = document.getElementById("confirm-yes");
    yes.textContent = form.dataset.verb || "Confirm";
    yes.classList.toggle("danger", form.querySelector(".danger") !== null);
    yes.classList.toggle("primary", form.querySelector(".danger") === null);
    dialog.returnValue = "";
    dialog.onclose = () => {
      if (dialog.returnValue === "yes") submitConfirmed(form);
    };
    dialog.showModal();
  }

  function submitConfirmed(form) {
    const field = document.createElement("input");
    field.type = "hidden";
    field.name = "confirmed";
    field.value = "1";
    form.appendChild(field);
    form.submit();
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
    event.preventDefault();
    confirmThen(form);
  });

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) poll();
  });

  document.addEventListener("DOMContentLoaded", () => {
    const region = live();
    if (region) {
      const stamp = Date.parse(region.dataset.now || "");
      if (!Number.isNaN(stamp)) serverNow = stamp;
      receivedAt = Date.now();
      setState("", "Live");
      schedule();
    }
    refreshTimes();
  });
})();

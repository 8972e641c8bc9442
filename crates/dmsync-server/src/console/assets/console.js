// The console's one script. Every page works without it; it adds live regions that refresh
// themselves, countdowns, drag and drop for the CSV upload, and confirmations. It loads nothing
// and talks only to the console's own pages.
"use strict";

(function () {
  const csrf = () => document.body.dataset.csrf || "";

  // A region with data-refresh="MS" is fetched again every MS milliseconds from the page it is on
  // (or from data-refresh-url) and replaced by the element with the same id in the answer. A
  // region the answer renders without data-refresh stops refreshing: the server says when the
  // thing it shows is finished. A region is left alone while focus is inside it.
  function scheduleRefresh(region) {
    const every = Number(region.dataset.refresh);
    if (!region.id || !(every > 0) || region.dataset.scheduled) return;
    region.dataset.scheduled = "1";
    setTimeout(async () => {
      if (!document.body.contains(region)) return;
      delete region.dataset.scheduled;
      if (document.hidden || region.contains(document.activeElement)) {
        scheduleRefresh(region);
        return;
      }
      try {
        const response = await fetch(region.dataset.refreshUrl || location.href, {
          headers: { Accept: "text/html" },
          credentials: "same-origin",
        });
        if (response.redirected && new URL(response.url).pathname.endsWith("/login")) {
          location.assign(response.url);
          return;
        }
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.getElementById(region.id);
        if (fresh) {
          region.replaceWith(fresh);
          enhance(fresh);
          return;
        }
      } catch (_) {
        // The server is away for a moment; try again on the next tick.
      }
      scheduleRefresh(region);
    }, every);
  }

  function formatSeconds(total) {
    const minutes = Math.floor(total / 60);
    const seconds = total % 60;
    return minutes + ":" + String(seconds).padStart(2, "0");
  }

  // data-countdown="S": counts S seconds down to zero, then reloads the page when the element
  // asks for it (data-countdown-done="reload"), so the button it holds back comes back.
  function startCountdown(element) {
    let left = Number(element.dataset.countdown);
    if (!(left >= 0) || element.dataset.counting) return;
    element.dataset.counting = "1";
    const tick = () => {
      if (!document.body.contains(element)) return;
      element.textContent = formatSeconds(left);
      if (left <= 0) {
        if (element.dataset.countdownDone === "reload") location.reload();
        return;
      }
      left -= 1;
      setTimeout(tick, 1000);
    };
    tick();
  }

  // A form with data-upload sends its file as the request's body (text/csv), with the CSRF token
  // in a header; a file dropped on its drop zone is sent the same way.
  function enhanceUpload(form) {
    if (form.dataset.enhanced) return;
    form.dataset.enhanced = "1";
    const input = form.querySelector('input[type="file"]');
    const zone = form.querySelector(".dropzone");
    const status = form.querySelector("[data-upload-status]");
    const send = async (file) => {
      if (!file) return;
      if (status) status.textContent = "Uploading " + file.name + "…";
      const response = await fetch(form.action, {
        method: "POST",
        body: file,
        credentials: "same-origin",
        headers: { "Content-Type": "text/csv", "x-csrf-token": csrf() },
      });
      if (response.redirected) {
        location.assign(response.url);
        return;
      }
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const main = page.querySelector("main");
      if (main) {
        document.querySelector("main").replaceWith(main);
        enhance(main);
      }
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      send(input && input.files[0]);
    });
    if (zone) {
      zone.addEventListener("dragover", (event) => {
        event.preventDefault();
        zone.classList.add("over");
      });
      zone.addEventListener("dragleave", () => zone.classList.remove("over"));
      zone.addEventListener("drop", (event) => {
        event.preventDefault();
        zone.classList.remove("over");
        send(event.dataTransfer.files[0]);
      });
    }
  }

  function enhance(root) {
    root.querySelectorAll("[data-refresh]").forEach(scheduleRefresh);
    if (root.matches && root.matches("[data-refresh]")) scheduleRefresh(root);
    root.querySelectorAll("[data-countdown]").forEach(startCountdown);
    root.querySelectorAll("form[data-upload]").forEach(enhanceUpload);
    root.querySelectorAll("select[data-autosubmit]").forEach((select) =>
      select.addEventListener("change", () => select.form.requestSubmit()),
    );
    root.querySelectorAll("form[data-confirm]").forEach((form) =>
      form.addEventListener("submit", (event) => {
        if (!confirm(form.dataset.confirm)) event.preventDefault();
      }),
    );
  }

  document.addEventListener("DOMContentLoaded", () => enhance(document));
})();

// Polls the QR approval while the page is open; when the app has approved, submits the form.
(function () {
  var status = document.getElementById("qr-status");
  var form = document.getElementById("qr-form");
  if (!status || !form) { return; }
  var url = status.getAttribute("data-status-url");
  var expired = document.currentScript ? document.currentScript.getAttribute("data-expired") : "";
  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        if (body.status === "approved") { form.submit(); return; }
        if (body.status === "expired" || body.status === "denied") { status.textContent = expired; return; }
        setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();

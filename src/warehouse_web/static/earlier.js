// The earlier days on the operator page (SPEC §5): Start and Close for the day each button names,
// Close only once confirmed. An answer reloads the page, which lists what still needs someone; a
// refusal is said beside the list. All text comes from data attributes in the template.
(function () {
  "use strict";
  var section = document.getElementById("earlier-days");
  if (!section) { return; }
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var texts = document.getElementById("earlier-texts").dataset;
  var messageBox = document.getElementById("earlier-message");
  var dialog = document.getElementById("earlier-close-dialog");
  var question = document.getElementById("earlier-close-question");
  var confirmButton = document.getElementById("earlier-close-confirm");
  var pending = null;

  function say(text) {
    messageBox.textContent = text;
    messageBox.hidden = !text;
  }

  function send(button) {
    var buttons = section.querySelectorAll("button");
    buttons.forEach(function (each) { each.disabled = true; });
    say("");
    fetch(button.dataset.url, {
      method: "POST",
      headers: { "X-CSRF-Token": csrf, "Accept": "application/json" },
      credentials: "same-origin"
    }).then(function (response) {
      if (response.ok) { window.location.reload(); return null; }
      return response.json().catch(function () { return {}; }).then(function (data) {
        say(data.error || String(response.status));
      });
    }).catch(function () {
      say(texts.unreachable);
    }).then(function () {
      buttons.forEach(function (each) { each.disabled = false; });
    });
  }

  section.querySelectorAll(".earlier-start").forEach(function (button) {
    button.addEventListener("click", function () { send(button); });
  });
  section.querySelectorAll(".earlier-close").forEach(function (button) {
    button.addEventListener("click", function () {
      pending = button;
      question.textContent = question.dataset.text.split("{day}").join(button.dataset.day);
      confirmButton.textContent = texts.confirm.split("{day}").join(button.dataset.day);
      dialog.showModal();
    });
  });
  document.getElementById("earlier-close-cancel").addEventListener("click", function () {
    dialog.close();
  });
  dialog.addEventListener("close", function () {
    if (pending && dialog.returnValue !== "confirmed") { pending.focus(); }
    dialog.returnValue = "";
  });
  // A page left open across midnight (or while another operator acts): when the list the server
  // gives differs from the one shown, the page is drawn again, unless a question is open.
  function listChanged() {
    if (dialog.open) { return; }
    fetch(section.dataset.statusUrl, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        if (status && JSON.stringify(status.earlier) !== JSON.stringify(JSON.parse(section.dataset.listed))) {
          window.location.reload();
        }
      })
      .catch(function () { return null; });
  }
  window.setInterval(listChanged, 60000);

  confirmButton.addEventListener("click", function () {
    var button = pending;
    dialog.close("confirmed");
    pending = null;
    if (button) { send(button); }
  });
}());

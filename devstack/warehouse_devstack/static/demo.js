// The demo panel (make run only): poll now, and the list of mails the local SMTP server kept.
(function () {
  "use strict";
  var panel = document.getElementById("demo");
  if (!panel) { return; }
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var result = document.getElementById("poll-result");
  var table = document.getElementById("mail-table");
  var body = table.querySelector("tbody");
  var empty = document.getElementById("no-mail");

  function loadMail() {
    fetch(panel.dataset.mailUrl, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
      body.textContent = "";
      data.mails.forEach(function (mail) {
        var row = document.createElement("tr");
        var event = document.createElement("td");
        var link = document.createElement("a");
        link.href = panel.dataset.mailBase + encodeURIComponent(mail.name);
        link.textContent = mail.event;
        event.appendChild(link);
        var subject = document.createElement("td");
        subject.textContent = mail.subject;
        var date = document.createElement("td");
        date.textContent = mail.date;
        row.appendChild(event); row.appendChild(subject); row.appendChild(date);
        body.appendChild(row);
      });
      table.hidden = data.mails.length === 0;
      empty.hidden = data.mails.length !== 0;
    }).catch(function () {});
  }

  document.getElementById("poll-now").addEventListener("click", function (event) {
    var button = event.target;
    button.disabled = true;
    fetch(panel.dataset.pollUrl, { method: "POST", headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        result.textContent = data.message || data.error;
        result.hidden = false;
        loadMail();
        document.getElementById("status").click();
      })
      .catch(function () {})
      .then(function () { button.disabled = false; });
  });

  loadMail();
  setInterval(loadMail, 5000);
}());

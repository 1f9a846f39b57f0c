// The operator page: four actions, a status line refreshed while a session runs. All text comes
// from the server or from data attributes in the template, so the page can be localised there.
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var texts = document.getElementById("texts").dataset;
  var statusLine = document.getElementById("status-line");
  var progress = document.getElementById("progress");
  var messageBox = document.getElementById("message");
  var problemList = document.getElementById("problems");
  var buttons = document.querySelectorAll("button");
  var refusals = document.getElementById("refusals");
  var closeDialog = document.getElementById("close-dialog");
  var closeQuestion = document.getElementById("close-question");
  var lastStatus = { state: statusLine.dataset.state, day: null };
  var timer = null;

  // A button the current state refuses is disabled, with the reason beside it (SPEC §7); a reason
  // is said once: an action refused for the same reason as one before it points to that sentence.
  function applyState(status) {
    var said = {};
    ["start", "close", "upload"].forEach(function (action) {
      var button = document.getElementById(action);
      var note = document.getElementById(action + "-refusal");
      var text = refusals.getAttribute("data-" + action + "-" + status.state);
      if (text !== null) { text = text.split("{day}").join(status.day || ""); }
      var first = text === null ? undefined : said[text];
      button.disabled = text !== null;
      note.hidden = text === null || first !== undefined;
      showText(note, text === null || first !== undefined ? "" : text);
      if (text === null) { button.removeAttribute("aria-describedby"); } else { button.setAttribute("aria-describedby", first || note.id); }
      if (text !== null && first === undefined) { said[text] = note.id; }
    });
    document.getElementById("status").disabled = false;
  }

  // A sentence with each ISO date kept whole (never broken at its hyphens).
  function showText(element, text) {
    element.textContent = "";
    String(text || "").split(/(\d{4}-\d{2}-\d{2})/).forEach(function (part, index) {
      if (index % 2 === 1) {
        var date = document.createElement("span");
        date.className = "date";
        date.textContent = part;
        element.appendChild(date);
      } else if (part) {
        element.appendChild(document.createTextNode(part));
      }
    });
  }

  function showLine(text) { showText(statusLine, text); }

  function showStatus(status) {
    showLine(status.message);
    statusLine.dataset.state = status.state;
    progress.max = status.total || 1;
    progress.value = status.processed;
    progress.hidden = status.state !== "running";
    lastStatus = status;
    applyState(status);
    schedule(status.state === "running" ? 2000 : 15000);
  }

  function showMessage(text, ok) {
    messageBox.textContent = text;
    messageBox.className = ok ? "ok" : "error";
    messageBox.hidden = !text;
  }

  function showProblems(problems) {
    problemList.textContent = "";
    (problems || []).forEach(function (problem) {
      var item = document.createElement("li");
      item.textContent = (problem.line ? texts.line + " " + problem.line : texts.file) + ": " + problem.reason;
      problemList.appendChild(item);
    });
    problemList.hidden = !problems || problems.length === 0;
  }

  function busy(on) {
    if (on) {
      buttons.forEach(function (button) { button.disabled = true; });
    } else {
      buttons.forEach(function (button) { button.disabled = false; });
      if (lastStatus.day) { applyState(lastStatus); } else { refresh(); }
    }
  }

  function request(method, url, body) {
    var headers = { "X-CSRF-Token": csrf, "Accept": "application/json" };
    return fetch(url, { method: method, headers: headers, body: body, credentials: "same-origin" })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          return { ok: response.ok, status: response.status, data: data };
        });
      });
  }

  function refresh() {
    return request("GET", document.getElementById("status").dataset.url).then(function (answer) {
      if (answer.ok) { showStatus(answer.data); }
    }).catch(function () { schedule(15000); });
  }

  function schedule(delay) {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(refresh, delay);
  }

  function act(button, confirmFirst) {
    button.addEventListener("click", function () {
      if (confirmFirst) {
        showText(closeQuestion, closeQuestion.dataset.text.split("{day}").join(lastStatus.day || ""));
        closeDialog.showModal();
        return;
      }
      send(button);
    });
  }

  function send(button) {
    busy(true);
    showMessage(texts.working, true);
    showProblems([]);
    request(button.id === "status" ? "GET" : "POST", button.dataset.url).then(function (answer) {
      if (answer.ok) {
        showStatus(answer.data);  // the status line says what happened
        showMessage("", true);
      } else {
        showMessage(answer.data.error || String(answer.status), false);
        refresh();
      }
    }).catch(function () {
      showMessage(texts.unreachable, false);
    }).then(function () { busy(false); });
  }

  act(document.getElementById("start"), false);
  act(document.getElementById("status"), false);
  act(document.getElementById("close"), true);
  // Close ends the day's export: it is sent only once confirmed; Escape or "keep" cancels.
  document.getElementById("close-cancel").addEventListener("click", function () { closeDialog.close(); });
  document.getElementById("close-confirm").addEventListener("click", function () {
    closeDialog.close();
    send(document.getElementById("close"));
  });

  document.getElementById("upload-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target;
    busy(true);
    showMessage(texts.uploading, true);
    showProblems([]);
    request("POST", form.action, new FormData(form)).then(function (answer) {
      var text = answer.data.error || answer.data.message;
      if (!text && answer.status === 413) { text = texts.tooLarge; }  // refused before the app saw it
      showMessage(text || String(answer.status), answer.ok);
      showProblems(answer.data.problems);
      refresh();
    }).catch(function () {
      showMessage(texts.unreachable, false);
    }).then(function () { busy(false); form.reset(); });
  });

  refresh();
}());

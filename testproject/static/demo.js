// The demo page: sign in over HTTP for a DRF token, then open /ws/whoami/
// with channelsBearer.connect() (bearer-websocket.js, loaded before this file).
"use strict";
(function () {
  var form = document.getElementById("sign-in-form");
  var whoami = document.getElementById("whoami");
  var status = document.getElementById("status");
  var frame = document.getElementById("frame");
  var socket = null;

  function show(text) {
    status.textContent = text;
  }

  function notConnected() {
    whoami.textContent = "(not connected)";
    frame.textContent = "";
  }

  async function fetchToken(username, password) {
    var response = await fetch("/api/token/", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ username: username, password: password }),
    });
    if (!response.ok) {
      // DRF answers 400 with {"non_field_errors": [...]} or {"<field>": [...]}.
      var reason = "";
      try {
        var body = await response.json();
        reason = Object.keys(body).map(function (key) { return [].concat(body[key]).join(" "); }).join(" ");
      } catch (ignored) {
        reason = response.statusText;
      }
      throw new Error("sign-in failed (HTTP " + response.status + ")" + (reason ? ": " + reason : ""));
    }
    return (await response.json()).token;
  }

  function open(token) {
    var ws = channelsBearer.connect("/ws/whoami/", token);
    ws.addEventListener("open", function () {
      show("open (subprotocol " + ws.protocol + ")");
    });
    ws.addEventListener("message", function (message) {
      var data = JSON.parse(message.data);
      if (data.user !== undefined) {
        whoami.textContent = data.user;
        frame.textContent = JSON.stringify(data, null, 2);
      }
    });
    ws.addEventListener("close", function (close) {
      if (socket !== ws) return; // an older socket this page replaced
      if (close.code === 1006) {
        // A refused handshake (401/403) reaches a page only as 1006.
        show("closed (code 1006: refused or unreachable)");
      } else if (close.code === 4401) {
        show("closed (code 4401: token expired or not accepted; sign in again)");
      } else if (close.code === 4403) {
        show("closed (code 4403: token revoked or user deactivated)");
      } else {
        show("closed (code " + close.code + ")");
      }
      notConnected();
    });
    return ws;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (socket) {
      var old = socket;
      socket = null;
      old.close(1000);
    }
    // Whatever happens next, the old socket's report no longer holds.
    notConnected();
    show("signing in…");
    var token;
    try {
      token = await fetchToken(
        document.getElementById("username").value,
        document.getElementById("password").value
      );
    } catch (error) {
      show(error.message);
      return;
    }
    show("connecting…");
    socket = open(token);
  });
})();

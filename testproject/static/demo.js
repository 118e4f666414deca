"use strict";
(function () {
  var form = document.getElementById("sign-in-form");
  var whoami = document.getElementById("whoami");
  var status = document.getElementById("status");
  var frame = document.getElementById("frame");
  var socket = null;

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (socket) socket.close();
    status.textContent = "signing in…";
    var response = await fetch("/api/token/", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        username: document.getElementById("username").value,
        password: document.getElementById("password").value,
      }),
    });
    if (!response.ok) {
      status.textContent = "sign-in failed (" + response.status + ")";
      return;
    }
    var token = (await response.json()).token;
    socket = channelsBearer.connect("/ws/whoami/", token);
    status.textContent = "connecting…";
    socket.addEventListener("open", function () {
      status.textContent = "open (subprotocol " + socket.protocol + ")";
    });
    socket.addEventListener("message", function (message) {
      var data = JSON.parse(message.data);
      if (data.user !== undefined) {
        whoami.textContent = data.user;
        frame.textContent = JSON.stringify(data, null, 2);
      }
    });
    socket.addEventListener("close", function (close) {
      status.textContent = "closed (code " + close.code + ")";
    });
  });
})();

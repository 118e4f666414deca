/*
 * channels-bearer browser helper: open a WebSocket that carries a bearer token
 * in the Sec-WebSocket-Protocol list, the one handshake value a page may set.
 *
 * As a plain script:
 *
 *   <script src="/static/channels_bearer/bearer-websocket.js"></script>
 *   <script>
 *     const ws = channelsBearer.connect("/ws/chat/", token, {protocols: ["chat.v2"]});
 *   </script>
 *
 * As a module (the import defines globalThis.channelsBearer):
 *
 *   import "/static/channels_bearer/bearer-websocket.js";
 *   const ws = globalThis.channelsBearer.connect("/ws/chat/", token);
 *
 * or, with named exports, `import {connect} from ".../bearer-websocket.esm.js"`.
 *
 * First-message authentication (a consumer with bearer_message_auth, the
 * "message" source): the handshake carries no token, and the first frame is
 * {"type": "bearer.authenticate", "token": ...}, sent before anything else:
 *
 *   const ws = channelsBearer.connect("/ws/chat/", token, {via: "message"});
 *
 * A token made only of RFC 6455 token characters (JWTs, DRF keys, OAuth
 * toolkit tokens) is sent as it is; any other as
 * "base64url.bearer.<base64url of its UTF-8, no padding>", because the browser
 * throws a SyntaxError on "/", "=", spaces or non-ASCII in a subprotocol, and
 * some servers (uvicorn) answer 400 to them before the application runs.
 *
 * The helper never logs, stores or echoes the token. No dependencies, no
 * build step: the file is both a classic script and a side-effect module.
 */
(function (root) {
  "use strict";

  var MARKER = "access_token";
  var ENCODED_PREFIX = "base64url.bearer.";
  // RFC 7230 tchar, which RFC 6455 requires of every subprotocol value.
  var TCHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  // Close code the server sends when the token expired or was not accepted:
  // the one case where a fresh token may help (4403 means "do not retry").
  var UNAUTHORIZED = 4401;
  // The first frame of first-message authentication.
  var AUTHENTICATE = "bearer.authenticate";
  var VIAS = ["subprotocol", "message"];

  function fail(message) {
    throw new TypeError("channelsBearer: " + message);
  }

  function base64url(text) {
    // TextEncoder makes the UTF-8 bytes; btoa alone only takes Latin-1.
    var bytes = new TextEncoder().encode(text);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function checkToken(token) {
    if (typeof token !== "string" || token.trim().length === 0) {
      fail("the token must be a non-empty string, not " + (typeof token === "string" ? "a blank one" : typeof token));
    }
  }

  function checkAppProtocols(appProtocols, marker) {
    if (appProtocols == null) return [];
    if (!Array.isArray(appProtocols)) fail("options.protocols must be an array of strings");
    var seen = {};
    appProtocols.forEach(function (name) {
      if (typeof name !== "string" || !TCHAR.test(name)) {
        fail("the subprotocol " + JSON.stringify(name) + " is not an RFC 6455 token");
      }
      if (name === marker || name.indexOf(ENCODED_PREFIX) === 0) {
        fail("options.protocols must hold application subprotocols only, not " + JSON.stringify(name));
      }
      if (seen[name]) fail("the subprotocol " + JSON.stringify(name) + " is offered twice");
      seen[name] = true;
    });
    return appProtocols.slice();
  }

  /**
   * The subprotocol entry that carries token: the token itself when it is an
   * RFC 6455 token that cannot be mistaken for another entry, else its
   * base64url form.
   */
  function tokenEntry(token, avoid) {
    checkToken(token);
    var raw =
      TCHAR.test(token) &&
      token.indexOf(ENCODED_PREFIX) !== 0 &&
      token !== MARKER &&
      (avoid || []).indexOf(token) === -1;
    return raw ? token : ENCODED_PREFIX + base64url(token);
  }

  /** The subprotocol list connect() offers: the marker, the token, then yours. */
  function protocols(token, appProtocols, options) {
    var marker = (options && options.marker) || MARKER;
    var apps = checkAppProtocols(appProtocols, marker);
    return [marker, tokenEntry(token, apps.concat([marker]))].concat(apps);
  }

  function absoluteUrl(url) {
    var text = String(url);
    if (/^wss?:\/\//i.test(text)) return text;
    // Older browsers take only absolute ws:// and wss:// URLs.
    var location = root.location;
    var resolved = new URL(text, location ? location.href : undefined);
    if (resolved.protocol === "http:") resolved.protocol = "ws:";
    else if (resolved.protocol === "https:") resolved.protocol = "wss:";
    return resolved.href;
  }

  function isThenable(value) {
    return value != null && typeof value.then === "function";
  }

  /** A token, or a token provider's result: a string or a Promise of one. */
  function resolveToken(token) {
    return typeof token === "function" ? token() : token;
  }

  /** The frame that authenticates a socket opened with {via: "message"}. */
  function authenticateFrame(token) {
    checkToken(token);
    return JSON.stringify({ type: AUTHENTICATE, token: token });
  }

  /**
   * Open a WebSocket to url that presents token. token is a string, or a
   * function that returns one (use open() when it returns a Promise).
   * options.protocols: application subprotocols offered after the token.
   * options.via: "subprotocol" (default) puts the token in the subprotocol
   * list; "message" sends it in the first frame instead.
   */
  function connect(url, token, options) {
    options = options || {};
    var via = options.via == null ? "subprotocol" : options.via;
    if (VIAS.indexOf(via) === -1) fail("options.via must be one of " + VIAS.join(", ") + ", not " + JSON.stringify(via));
    var value = resolveToken(token);
    if (isThenable(value)) {
      fail("the token provider returned a Promise: use channelsBearer.open(), which returns a Promise of the WebSocket");
    }
    if (via === "subprotocol") {
      return new WebSocket(absoluteUrl(url), protocols(value, options.protocols, options));
    }
    var frame = authenticateFrame(value);
    var ws = new WebSocket(absoluteUrl(url), checkAppProtocols(options.protocols, (options && options.marker) || MARKER));
    // Added before the caller can add theirs: the frame goes out first, and
    // the caller's "open" listeners may send right away.
    ws.addEventListener("open", function () {
      ws.send(frame);
      frame = null;
    });
    return ws;
  }

  /**
   * Like connect(), for a token provider that may return a Promise: resolves
   * to the WebSocket as soon as it is created (listeners added then miss
   * nothing, as socket events come in later tasks).
   */
  function open(url, token, options) {
    return Promise.resolve()
      .then(function () {
        return resolveToken(token);
      })
      .then(function (value) {
        return connect(url, value, options);
      });
  }

  /**
   * A socket that reconnects with a fresh token after a 4401 close.
   *
   * token is a provider function (string or Promise of one), called for every
   * connection; a plain string is used once, since reconnecting with the token
   * the server just refused cannot help. Events: "open", "message", "error",
   * "reconnect" (CustomEvent, detail {attempt, code}) and one final "close":
   * on any close code other than 4401, when close() was called, or after
   * options.maxReconnects (default 3) 4401 closes with no message received in
   * between. on<event> properties work too.
   */
  function ReconnectingBearerSocket(url, token, options) {
    options = options || {};
    var self = this;
    var target = new EventTarget();
    var socket = null;
    var closed = false; // close() was called, or the final close came
    var finished = false; // the final "close" event was emitted
    var attempts = 0;
    var maxReconnects = options.maxReconnects == null ? 3 : options.maxReconnects;
    var delay = options.reconnectDelay == null ? 1000 : options.reconnectDelay;
    var timer = null;

    this.url = url;
    this.onopen = this.onmessage = this.onerror = this.onclose = this.onreconnect = null;

    function emit(event) {
      target.dispatchEvent(event);
      var handler = self["on" + event.type];
      if (typeof handler === "function") handler.call(self, event);
    }

    function finish(code, reason, wasClean) {
      if (finished) return;
      finished = closed = true;
      socket = null;
      emit(new CloseEvent("close", { code: code, reason: reason, wasClean: wasClean }));
    }

    function start() {
      open(url, token, options).then(
        function (ws) {
          if (closed) {
            ws.close(1000);
            return;
          }
          socket = ws;
          ws.addEventListener("open", function () {
            emit(new Event("open"));
          });
          ws.addEventListener("message", function (event) {
            // The server accepted this token: later 4401s are fresh expiries.
            attempts = 0;
            emit(new MessageEvent("message", { data: event.data, origin: event.origin }));
          });
          ws.addEventListener("error", function () {
            emit(new Event("error"));
          });
          ws.addEventListener("close", function (event) {
            if (socket !== ws) return;
            var retry =
              !closed && event.code === UNAUTHORIZED && typeof token === "function" && attempts < maxReconnects;
            if (!retry) {
              finish(event.code, event.reason, event.wasClean);
              return;
            }
            attempts += 1;
            socket = null;
            emit(new CustomEvent("reconnect", { detail: { attempt: attempts, code: event.code } }));
            // The first retry is immediate (a token that just expired); a
            // token the server keeps refusing is retried more slowly.
            timer = setTimeout(start, attempts === 1 ? 0 : delay);
          });
        },
        function (error) {
          if (closed) return;
          var event = new Event("error");
          event.error = error;
          emit(event);
          finish(1006, "token provider failed", false);
        }
      );
    }

    this.addEventListener = target.addEventListener.bind(target);
    this.removeEventListener = target.removeEventListener.bind(target);
    this.dispatchEvent = target.dispatchEvent.bind(target);

    Object.defineProperties(this, {
      /** The current WebSocket, or null between connections. */
      socket: {
        get: function () {
          return socket;
        },
      },
      readyState: {
        get: function () {
          if (socket) return socket.readyState;
          return closed ? WebSocket.CLOSED : WebSocket.CONNECTING;
        },
      },
      protocol: {
        get: function () {
          return socket ? socket.protocol : "";
        },
      },
    });

    /** Send on the current socket; throws while (re)connecting, like WebSocket. */
    this.send = function (data) {
      if (!socket || socket.readyState !== WebSocket.OPEN) {
        throw new DOMException("channelsBearer: the socket is not open", "InvalidStateError");
      }
      socket.send(data);
    };

    /** Close for good: no reconnect follows. */
    this.close = function (code, reason) {
      if (timer !== null) clearTimeout(timer);
      closed = true;
      if (socket) {
        socket.close(code == null ? 1000 : code, reason);
      } else {
        finish(code == null ? 1000 : code, reason || "", true);
      }
    };

    start();
  }

  function reconnecting(url, token, options) {
    return new ReconnectingBearerSocket(url, token, options);
  }

  root.channelsBearer = {
    MARKER: MARKER,
    ENCODED_PREFIX: ENCODED_PREFIX,
    AUTHENTICATE: AUTHENTICATE,
    authenticateFrame: authenticateFrame,
    connect: connect,
    open: open,
    protocols: protocols,
    reconnecting: reconnecting,
    tokenEntry: tokenEntry,
  };
})(typeof globalThis !== "undefined" ? globalThis : this);

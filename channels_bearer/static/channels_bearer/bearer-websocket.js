/*
 * channels-bearer browser helper: open a WebSocket that carries a bearer token
 * in the Sec-WebSocket-Protocol list, the one value a page may set.
 *
 *   <script src="/static/channels_bearer/bearer-websocket.js"></script>
 *   const ws = channelsBearer.connect("/ws/chat/", token);
 *
 *   // or as a module:
 *   import "/static/channels_bearer/bearer-websocket.js";
 *   const ws = globalThis.channelsBearer.connect(url, token, {protocols: ["chat.v2"]});
 *
 * A token made only of RFC 6455 token characters (JWTs, DRF keys) is sent as
 * it is; any other as "base64url.bearer.<base64url of its UTF-8, no padding>",
 * since the browser throws a SyntaxError on "/", "=", spaces or non-ASCII.
 * No dependencies, no build step.
 */
(function (root) {
  "use strict";

  var MARKER = "access_token";
  var ENCODED_PREFIX = "base64url.bearer.";
  // RFC 7230 tchar: the characters a subprotocol value may hold.
  var TCHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

  function base64url(text) {
    var bytes = new TextEncoder().encode(text);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function tokenEntry(token) {
    if (typeof token !== "string" || token.length === 0) {
      throw new TypeError("channelsBearer: the token must be a non-empty string");
    }
    return TCHAR.test(token) && token.indexOf(ENCODED_PREFIX) !== 0 ? token : ENCODED_PREFIX + base64url(token);
  }

  /** The subprotocol list connect() offers: the marker, the token, then yours. */
  function protocols(token, appProtocols, options) {
    var marker = (options && options.marker) || MARKER;
    return [marker, tokenEntry(token)].concat(appProtocols || []);
  }

  function absoluteUrl(url) {
    if (/^wss?:\/\//.test(url)) return url;
    var location = root.location;
    var resolved = new URL(url, location ? location.href : undefined);
    if (resolved.protocol === "http:") resolved.protocol = "ws:";
    if (resolved.protocol === "https:") resolved.protocol = "wss:";
    return resolved.href;
  }

  /** Open a WebSocket to url that presents token. */
  function connect(url, token, options) {
    options = options || {};
    return new WebSocket(absoluteUrl(url), protocols(token, options.protocols, options));
  }

  root.channelsBearer = {
    MARKER: MARKER,
    ENCODED_PREFIX: ENCODED_PREFIX,
    connect: connect,
    protocols: protocols,
    tokenEntry: tokenEntry,
  };
})(typeof globalThis !== "undefined" ? globalThis : this);

/*
 * channels-bearer browser helper as an ES module with named exports:
 *
 *   import {connect} from "/static/channels_bearer/bearer-websocket.esm.js";
 *   const ws = connect("/ws/chat/", token);
 *
 * The code lives in bearer-websocket.js (a classic script that also works as
 * a side-effect import); this module only re-exports what it defines.
 */
import "./bearer-websocket.js";

const channelsBearer = globalThis.channelsBearer;

export const { MARKER, ENCODED_PREFIX, AUTHENTICATE, authenticateFrame, connect, open, protocols, reconnecting, tokenEntry } =
  channelsBearer;
export default channelsBearer;

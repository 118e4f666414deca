// Type declarations for bearer-websocket.esm.js: named exports of channelsBearer.
/// <reference path="./bearer-websocket.d.ts" />

export import TokenSource = channelsBearer.TokenSource;
export import AsyncTokenSource = channelsBearer.AsyncTokenSource;
export import ConnectOptions = channelsBearer.ConnectOptions;
export import ReconnectOptions = channelsBearer.ReconnectOptions;
export import ReconnectingSocket = channelsBearer.ReconnectingSocket;

export declare const MARKER: typeof channelsBearer.MARKER;
export declare const ENCODED_PREFIX: typeof channelsBearer.ENCODED_PREFIX;
export declare const AUTHENTICATE: typeof channelsBearer.AUTHENTICATE;
export declare const authenticateFrame: typeof channelsBearer.authenticateFrame;
export declare const connect: typeof channelsBearer.connect;
export declare const open: typeof channelsBearer.open;
export declare const protocols: typeof channelsBearer.protocols;
export declare const reconnecting: typeof channelsBearer.reconnecting;
export declare const tokenEntry: typeof channelsBearer.tokenEntry;
declare const _default: typeof channelsBearer;
export default _default;

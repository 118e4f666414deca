// Type declarations for bearer-websocket.js (channels-bearer's browser helper).
// The script defines globalThis.channelsBearer, as a plain <script> and as a
// side-effect module import alike.

declare namespace channelsBearer {
  /** A token, or a function called for every connection that returns one. */
  type TokenSource = string | (() => string);
  /** Like TokenSource, but the function may return a Promise (open(), reconnecting()). */
  type AsyncTokenSource = string | (() => string | PromiseLike<string>);

  interface ProtocolOptions {
    /** The marker subprotocol: the server's CHANNELS_BEARER["SUBPROTOCOL"]. Default "access_token". */
    marker?: string;
  }

  interface ConnectOptions extends ProtocolOptions {
    /** Application subprotocols offered after the token, in order of preference. */
    protocols?: readonly string[];
    /**
     * Where the token goes: "subprotocol" (default), or "message": the first frame,
     * {"type": "bearer.authenticate", "token": ...}, sent before anything else
     * (first-message authentication; the consumer needs BearerConsumerMixin).
     */
    via?: "subprotocol" | "message";
  }

  interface ReconnectOptions extends ConnectOptions {
    /** How many 4401 closes in a row (with no message in between) are retried. Default 3. */
    maxReconnects?: number;
    /** Milliseconds before the second and later retries in a row; the first is immediate. Default 1000. */
    reconnectDelay?: number;
  }

  interface ReconnectEventDetail {
    /** 1 for the first retry after a message was received, then 2, 3... */
    attempt: number;
    /** The close code that caused the retry (4401). */
    code: number;
  }

  interface ReconnectingSocketEventMap {
    open: Event;
    message: MessageEvent;
    /** A socket error, or a failed token provider (then `error` holds what it threw). */
    error: Event & { error?: unknown };
    /** Emitted once, when no reconnect follows. */
    close: CloseEvent;
    reconnect: CustomEvent<ReconnectEventDetail>;
  }

  /** A socket that reconnects with a fresh token after a 4401 close. */
  interface ReconnectingSocket {
    readonly url: string | URL;
    /** The current WebSocket, or null between connections. */
    readonly socket: WebSocket | null;
    readonly readyState: number;
    /** The subprotocol the server answered on the current socket ("" when none). */
    readonly protocol: string;
    onopen: ((this: ReconnectingSocket, event: Event) => unknown) | null;
    onmessage: ((this: ReconnectingSocket, event: MessageEvent) => unknown) | null;
    onerror: ((this: ReconnectingSocket, event: Event & { error?: unknown }) => unknown) | null;
    onclose: ((this: ReconnectingSocket, event: CloseEvent) => unknown) | null;
    onreconnect: ((this: ReconnectingSocket, event: CustomEvent<ReconnectEventDetail>) => unknown) | null;
    /** Send on the current socket; throws an InvalidStateError while (re)connecting. */
    send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void;
    /** Close for good: no reconnect follows. */
    close(code?: number, reason?: string): void;
    addEventListener<K extends keyof ReconnectingSocketEventMap>(
      type: K,
      listener: (this: ReconnectingSocket, event: ReconnectingSocketEventMap[K]) => unknown,
      options?: boolean | AddEventListenerOptions,
    ): void;
    addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
    removeEventListener<K extends keyof ReconnectingSocketEventMap>(
      type: K,
      listener: (this: ReconnectingSocket, event: ReconnectingSocketEventMap[K]) => unknown,
      options?: boolean | EventListenerOptions,
    ): void;
    removeEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | EventListenerOptions): void;
    dispatchEvent(event: Event): boolean;
  }

  /** "access_token": the subprotocol that announces the token entry after it. */
  const MARKER: string;
  /** "base64url.bearer.": the prefix of an encoded token entry. */
  const ENCODED_PREFIX: string;
  /** "bearer.authenticate": the type of the first frame with {via: "message"}. */
  const AUTHENTICATE: string;

  /** The first frame of first-message authentication, as JSON text. */
  function authenticateFrame(token: string): string;

  /** Open a WebSocket to url (ws:, wss:, http:, https: or relative) that presents token. */
  function connect(url: string | URL, token: TokenSource, options?: ConnectOptions): WebSocket;
  /** Like connect(), for a token provider that returns a Promise; resolves once the socket is created. */
  function open(url: string | URL, token: AsyncTokenSource, options?: ConnectOptions): Promise<WebSocket>;
  /** The subprotocol list connect() offers: [marker, token entry, ...appProtocols]. */
  function protocols(token: string, appProtocols?: readonly string[], options?: ProtocolOptions): string[];
  /** A socket that calls token again and reconnects after a 4401 close. */
  function reconnecting(url: string | URL, token: AsyncTokenSource, options?: ReconnectOptions): ReconnectingSocket;
  /** The entry that carries token: raw when it is a safe RFC 6455 token, else base64url.bearer.<...>. */
  function tokenEntry(token: string, avoid?: readonly string[]): string;
}

/**
 * Socket.IO at its default path (`/socket.io/`), on the protocol of shared/socketio.ts. A
 * translator like ws.ts: the handshake's `auth` goes to the hub's authenticate hook, control
 * events and chunks to a Session, replies back as events and acknowledgements.
 *
 * Watching goes through rooms instead of a subscription per socket: the transport holds one
 * subscription to the hub's stream and one throttle pass per upload, and emits each event
 * that passes once to the rooms `upload:<id>`, `owner:<owner>` and `all` (Socket.IO
 * de-duplicates sockets across rooms). A watcher costs nothing per chunk, and the packet is
 * encoded once however many watch. Which rooms a socket joins follows maySee (auth.ts):
 * an id only if the hub says the principal may see it, all uploads as `owner:<id>`, or as
 * `all` for principals who see every upload (watchers and admins).
 *
 * A slow socket gets fewer progress events, never a growing buffer: the bytes queued unsent on
 * its connection are measured for its Session, which applies the one bound of every transport
 * (Backlog). While congested the socket is in the `congested` room, which progress skips; state,
 * stage and log events and chunk replies always go out, and a socket whose unsent output passes
 * watcherMaxBufferedBytes gets `error` ERR_SLOW_CONSUMER, `closing`, and a disconnect.
 */
import { Server, type Socket } from 'socket.io';
import { UploadHubError, toHubError } from '../../shared/errors.js';
import { validateClientMessage } from '../../shared/codec.js';
import { isTerminalState, PROTOCOL_VERSION, type HubEvent, type ServerMessage } from '../../shared/messages.js';
import {
  CHUNK_EVENT,
  CLIENT_EVENTS,
  isClientEventName,
  messageOf,
  parseClientEvent,
  validateChunkEvent,
  type ClientToServerEvents,
  type ConnectErrorData,
  type InterServerEvents,
  type ServerToClientEvents,
  type SocketData,
} from '../../shared/socketio.js';
import { EventThrottle } from '../../shared/throttle.js';
import { derivedLimits } from '../config.js';
import { ANY_ORIGIN, originRefusal } from './origin.js';
import { limitEngineIoHandshakes } from './connectionLimit.js';
import { seesAll, type Principal } from '../core/auth.js';
import { handshake } from '../protocol/handshake.js';
import { Session, type SessionWatch } from '../protocol/Session.js';
import type { UploadHub } from '../core/UploadHub.js';
import type { Transport, TransportContext } from './Transport.js';

export type HubIoServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
type HubSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

/** Room names. Prefixed so they never collide with Socket.IO's per-socket rooms (bare ids). */
export const ROOMS = {
  upload: (uploadId: string) => `upload:${uploadId}`,
  owner: (principalId: string) => `owner:${principalId}`,
  all: 'all',
  congested: 'congested',
} as const;

/** Sees every upload's owner, to route its events; never given to a connection. */

export interface SocketIoTransport extends Transport {
  readonly io: HubIoServer;
  /** What the transport holds, for leak checks: all but the subscription drop to zero without sockets. */
  resources(): { sessions: number; rooms: number; subscriptions: number; trackedUploads: number; throttleTimers: number; sessionTimers: number };
}

export function socketIoTransport({ hub, server, logger, socketIoAdapter }: TransportContext): SocketIoTransport {
  const { corsOrigins } = hub.options;
  const upgradeListeners = new Set(server.listeners('upgrade'));
  const io: HubIoServer = new Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>(server, {
    maxHttpBufferSize: derivedLimits(hub.options).socketIoMaxBuffer,
    serveClient: false,
    // Upload bytes do not compress; deflating them only burns CPU.
    perMessageDeflate: false,
    httpCompression: false,
    // Several nodes: Socket.IO's own messages between them ride Redis Streams. Hub events need
    // no adapter: every node reads the cluster's event stream and emits to its own sockets.
    ...(socketIoAdapter ? { adapter: socketIoAdapter } : {}),
    ...(hub.options.heartbeatMs > 0 ? { pingInterval: hub.options.heartbeatMs } : {}),
    // Upgrades were checked by app.ts already; this is for the long-polling handshake, a plain
    // GET. Engine.IO answers a refusal 403 with the message (the code first) in its JSON.
    allowRequest(request, callback) {
      const refused = originRefusal(request.headers, hub.options);
      callback(refused === undefined ? null : `${refused.code}: ${refused.message}`, refused === undefined);
    },
    // Long-polling is read by the page through XHR/fetch: CORS origins get its answers too.
    ...(corsOrigins.length > 0 ? { cors: { origin: corsOrigins.includes(ANY_ORIGIN) ? ANY_ORIGIN : [...corsOrigins] } } : {}),
  });
  // Engine.IO listens for upgrades by itself; app.ts routes every upgrade (after the Origin
  // check) to handleUpgrade instead, so its listener comes off the server.
  for (const listener of server.listeners('upgrade')) {
    if (!upgradeListeners.has(listener)) server.off('upgrade', listener as (...args: unknown[]) => void);
  }
  // maxConnectionsPerIp for long-polling clients; WebSocket ones are counted at the upgrade (app.ts).
  limitEngineIoHandshakes(hub, io.engine);
  const sessions = new Set<Session>();
  const fanOut = new RoomFanOut(io, hub);

  io.use((socket, next) => {
    authenticate(hub, socket.handshake.auth).then(
      (principal) => {
        socket.data.principal = principal;
        next();
      },
      (error: unknown) => next(connectError(toHubError(error, 'ERR_UNAUTHORIZED'))),
    );
  });

  io.on('connection', (socket) => {
    const principal = socket.data.principal;
    const output = meterOutput(socket, () => session);
    const session: Session = new Session(hub, sessionSink(socket, output.bytes, logger), principal, roomWatch(socket, hub, principal));
    sessions.add(session);

    socket.onAny((event: string) => {
      if (event !== CHUNK_EVENT && !isClientEventName(event)) {
        session.reject(new UploadHubError('ERR_UNKNOWN_MESSAGE', `Unknown event ${JSON.stringify(event)}`));
      }
    });
    for (const type of CLIENT_EVENTS) {
      socket.on(type, (payload: unknown) => {
        let message;
        try {
          // The raw transport's size limit (UTF-8 bytes of the message's JSON) and schema.
          message = parseClientEvent(type, payload, hub.options.maxMessageBytes);
        } catch (error) {
          session.reject(toHubError(error, 'ERR_BAD_MESSAGE'));
          return;
        }
        void session.handle(message);
      });
    }
    socket.on(CHUNK_EVENT, (uploadId: unknown, offset: unknown, data: unknown, ack: unknown) => {
      let frame;
      try {
        if (typeof ack !== 'function') throw new UploadHubError('ERR_BAD_FRAME', 'chunk: an acknowledgement callback is required');
        frame = validateChunkEvent(uploadId, offset, data);
      } catch (error) {
        session.reject(toHubError(error, 'ERR_BAD_FRAME'));
        return;
      }
      session.chunk(frame.uploadId, frame.offset, frame.data, ack as (reply: unknown) => void);
    });
    socket.on('disconnect', () => {
      output.stop();
      session.close();
      sessions.delete(session);
    });
    socket.emit('welcome', payloadOf(session.welcome()));
  });

  return {
    name: 'socket.io',
    io,
    ownsUpgrade: (pathname) => pathname.startsWith(`${io.path()}/`),
    handleUpgrade: (request, socket, head) => io.engine.handleUpgrade(request, socket, head),
    connections: () => io.of('/').sockets.size,
    resources: () => {
      let sessionTimers = 0;
      for (const session of sessions) sessionTimers += session.resources.timers;
      return {
        sessions: sessions.size,
        rooms: io.of('/').adapter.rooms.size,
        subscriptions: fanOut.subscribed ? 1 : 0,
        trackedUploads: fanOut.throttle.trackedUploads,
        throttleTimers: fanOut.throttle.pendingTimers,
        sessionTimers,
      };
    },
    async close() {
      fanOut.close();
      const shutdown = new UploadHubError('ERR_SHUTTING_DOWN');
      for (const socket of io.of('/').sockets.values()) {
        socket.emit('closing', { code: shutdown.code, message: shutdown.message });
        socket.disconnect(true);
      }
      // Not io.close(): it would close the HTTP server the other transports share; app.ts does that.
      // The request and upgrade listeners Engine.IO put on that server go with it.
      io.engine.close();
      // A Redis adapter stops its stream readers and heartbeats (a no-op for the in-memory one).
      for (const namespace of io._nsps.values()) await namespace.adapter.close();
    },
  };
}

/** The handshake's `auth` is `hello` without its type: same schema, same version rule, same hook. */
async function authenticate(hub: UploadHub, auth: unknown): Promise<Principal> {
  const hello = validateClientMessage(messageOf('hello', auth));
  if (hello.type !== 'hello') throw new UploadHubError('ERR_BAD_MESSAGE');
  return handshake(hub, hello.version, hello.token);
}

/** A refused handshake: the client's `connect_error` carries the code in `data`. */
function connectError(error: UploadHubError): Error & { data: ConnectErrorData } {
  return Object.assign(new Error(error.message), { data: { code: error.code } });
}

function sessionSink(socket: HubSocket, bufferedBytes: () => number, logger: TransportContext['logger']) {
  return {
    send: (message: ServerMessage) => emitMessage(socket, message),
    bufferedBytes,
    close(error: UploadHubError) {
      logger.debug({ code: error.code }, 'disconnecting socket.io socket');
      socket.emit('closing', { code: error.code, message: error.message });
      socket.disconnect(true);
    },
  };
}

/** What a Session follows becomes room membership; leaving happens on its own at disconnect. */
function roomWatch(socket: HubSocket, hub: UploadHub, principal: Principal): SessionWatch {
  const allRoom = seesAll(principal) ? ROOMS.all : ROOMS.owner(principal.id);
  /** Rooms to join once the hub confirmed the principal may see the upload. */
  const pending = new Set<string>();
  return {
    add(uploadId) {
      // The session may add an id before the hub has checked access (cancel, resume): join only what may be seen.
      const room = ROOMS.upload(uploadId);
      pending.add(room);
      hub.status(principal, uploadId).then(
        () => {
          if (pending.delete(room)) void socket.join(room);
        },
        () => pending.delete(room),
      );
    },
    has: (uploadId) => pending.has(ROOMS.upload(uploadId)) || socket.rooms.has(ROOMS.upload(uploadId)),
    remove: (uploadId) => {
      pending.delete(ROOMS.upload(uploadId));
      void socket.leave(ROOMS.upload(uploadId));
    },
    setAll: (all) => void (all ? socket.join(allRoom) : socket.leave(allRoom)),
    congested: (congested) => void (congested ? socket.join(ROOMS.congested) : socket.leave(ROOMS.congested)),
    close: () => undefined,
  };
}

type EngineTransport = HubSocket['conn']['transport'];

/**
 * Bytes queued unsent on one Engine.IO connection: packets not yet handed to its transport
 * (all of them while the transport is not writable: a WebSocket whose peer stopped reading, a
 * poll not yet made), plus what the transport's WebSocket still holds. The session hears of
 * every packet (`wrote`: fan-out emits and acknowledgements bypass it) and of every flush and
 * drain (`drain`).
 */
function meterOutput(socket: HubSocket, session: () => Session): { bytes(): number; stop(): void } {
  const conn = socket.conn;
  let queued = 0;
  let transport: EngineTransport = conn.transport;
  // packetCreate comes just before the packet is queued; the session closes a slow consumer a
  // microtask later, so its `error` and `closing` still follow the packet that passed the bound.
  const onPacket = (packet: { data?: unknown }) => {
    queued += packetBytes(packet.data);
    session().wrote();
  };
  // 'flush' comes as the queue is handed to the transport, 'drain' right after that; the
  // transport's own 'drain' once its WebSocket has written everything out.
  const onFlush = () => void (queued = 0);
  const onDrain = () => session().drain();
  const onUpgrade = (next: EngineTransport) => {
    transport.off('drain', onDrain);
    transport = next;
    transport.on('drain', onDrain);
  };
  conn.on('packetCreate', onPacket);
  conn.on('flush', onFlush);
  conn.on('drain', onDrain);
  conn.on('upgrade', onUpgrade);
  transport.on('drain', onDrain);
  return {
    bytes: () => queued + webSocketBuffered(transport),
    stop() {
      conn.off('packetCreate', onPacket);
      conn.off('flush', onFlush);
      conn.off('drain', onDrain);
      conn.off('upgrade', onUpgrade);
      transport.off('drain', onDrain);
    },
  };
}

function packetBytes(data: unknown): number {
  if (typeof data === 'string') return Buffer.byteLength(data);
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}

/** Engine.IO's websocket transport keeps its `ws` socket as `socket`; polling has none (its output is a response already sent). */
function webSocketBuffered(transport: EngineTransport): number {
  const ws = (transport as unknown as { socket?: { bufferedAmount?: unknown } }).socket;
  return typeof ws?.bufferedAmount === 'number' ? ws.bufferedAmount : 0;
}

/**
 * The one subscription and the one throttle of the transport. Each event that passes goes to
 * the rooms that may see it; a terminal one also empties the upload's room.
 */
class RoomFanOut {
  readonly throttle: EventThrottle;
  private readonly owners = new Map<string, string>();
  private readonly unsubscribe: () => void;
  subscribed = true;

  constructor(private readonly io: HubIoServer, private readonly hub: UploadHub) {
    this.throttle = new EventThrottle((event) => this.emit(event), {
      intervalMs: hub.options.progressIntervalMs,
      minStepPercent: hub.options.progressMinStepPercent,
    });
    const subscription = hub.events.subscribe({
      all: true,
      deliver: (event, owner) => {
        this.owners.set(event.uploadId, owner);
        // With no Socket.IO client at all there is no one to throttle for.
        if (this.io.engine.clientsCount > 0) this.throttle.push(event);
        else if (isTerminalState(event.type)) this.owners.delete(event.uploadId);
      },
    });
    this.unsubscribe = () => subscription.close();
  }

  close(): void {
    this.subscribed = false;
    this.unsubscribe();
    this.throttle.close();
    this.owners.clear();
  }

  private emit(event: HubEvent): void {
    const uploadRoom = ROOMS.upload(event.uploadId);
    const owner = this.owners.get(event.uploadId);
    const targets = owner === undefined ? [uploadRoom, ROOMS.all] : [uploadRoom, ROOMS.owner(owner), ROOMS.all];
    const rooms = this.io.of('/').adapter.rooms;
    if (targets.some((room) => rooms.has(room))) {
      // Local: with several hub processes, each one's stream carries every event already.
      const to = this.io.local.to(targets);
      (event.type === 'progress' ? to.except(ROOMS.congested) : to).emit('event', { event });
    }
    if (isTerminalState(event.type)) {
      this.io.local.in(uploadRoom).socketsLeave(uploadRoom);
      this.owners.delete(event.uploadId);
    }
  }
}

/** A server message as its event: the name is the type, the payload the rest. */
function emitMessage(socket: HubSocket, message: ServerMessage): void {
  switch (message.type) {
    case 'welcome': return void socket.emit('welcome', payloadOf(message));
    case 'attached': return void socket.emit('attached', payloadOf(message));
    case 'event': return void socket.emit('event', payloadOf(message));
    case 'watching': return void socket.emit('watching', payloadOf(message));
    case 'error': return void socket.emit('error', payloadOf(message));
    case 'pong': return void socket.emit('pong', payloadOf(message));
    case 'status': return void socket.emit('status', payloadOf(message));
    case 'ack':
      // Chunk replies travel as acknowledgements; a session never sends one as a message.
      throw new UploadHubError('ERR_INTERNAL', 'ack sent as a message on Socket.IO');
  }
}

function payloadOf<M extends { type: string }>(message: M): Omit<M, 'type'> {
  const { type: _type, ...payload } = message;
  return payload;
}

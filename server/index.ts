/** `upload-hub/server`: the hub, its stores, processing API and example stages. */
export { createHubServer, TRANSPORTS, type HubServer, type HubServerInit } from './app.js';
export { UploadHub, type UploadHubInit, type Writer, type Attached, type ChunkResult, type ListFilter } from './core/UploadHub.js';
export type { UploadRegistry, Lease, StoredUpload, NodeRequest } from './core/Registry.js';
export { LocalRegistry } from './core/LocalRegistry.js';
export { Session, chunkReply, type SessionSink } from './protocol/Session.js';
export { ANONYMOUS, ROLES, mayCreate, maySee, mayWrite, roleOf, type Authenticate, type Principal, type Role } from './core/auth.js';
export { EventBus, Subscription } from './core/EventBus.js';
export { resolveOptions, derivedLimits, type HubOptions, type HubOptionsInput } from './config.js';
export { DiskStore } from './store/DiskStore.js';
export type { UploadStore, UploadRecord, ByteWriter } from './store/UploadStore.js';
export { Pipeline } from './processing/Pipeline.js';
export type { Stage, StageContext, StageUpload } from './processing/Stage.js';
export { gzipStage, importRowsStage, defaultPipeline } from './processors/index.js';
export type { Transport, TransportContext, TransportFactory } from './transports/Transport.js';
export { UploadHubError, ERROR_CODES, type ErrorCode } from '../shared/errors.js';

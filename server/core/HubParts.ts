/**
 * What the core's units share: the hub's options, where uploads and events live, and the units
 * they call on. UploadHub builds it once and hands it to each unit (Holdings, Handover,
 * Sweeper), so none of them reaches into the façade.
 */
import type { Logger } from 'pino';
import type { HubEventBody, UploadState } from '../../shared/messages.js';
import type { HubOptions } from '../config.js';
import type { Pipeline } from '../processing/Pipeline.js';
import type { ProcessingQueue } from '../processing/ProcessingQueue.js';
import type { UploadStore } from '../store/UploadStore.js';
import type { EventBus } from './EventBus.js';
import type { Finalizer } from './Finalizer.js';
import type { FlowControl } from './FlowControl.js';
import type { Limits } from './Limits.js';
import type { UploadRegistry } from './Registry.js';

export interface HubParts {
  readonly options: HubOptions;
  readonly store: UploadStore;
  readonly registry: UploadRegistry;
  readonly events: EventBus;
  readonly pipeline: Pipeline;
  readonly limits: Limits;
  readonly flow: FlowControl;
  readonly logger: Logger | undefined;
  readonly finalizer: Finalizer;
  readonly processing: ProcessingQueue;
  /** Closing or draining: no new work is taken on. */
  readonly stopping: boolean;
  /** Work started without a caller to await it; the hub's close waits for it. */
  background(work: Promise<void>): void;
  publish(owner: string, body: HubEventBody): void;
}

/** States after which the bytes phase is over: a resume has nothing left to send. */
export const PAST_BYTES: ReadonlySet<UploadState> = new Set(['uploaded', 'queued', 'processing']);

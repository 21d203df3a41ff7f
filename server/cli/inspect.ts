/**
 * `status ID`, `ls [--state S]` and `cancel ID...`: the hub's REST routes, printed for people on
 * a terminal and as JSON otherwise (or with --json).
 */
import { InvalidArgumentError } from 'commander';
import { UploadHubError } from '../../shared/errors.js';
import { UPLOAD_ID_PATTERN, UPLOAD_STATES, isTerminalState, type UploadState, type UploadStatus } from '../../shared/messages.js';
import { EXIT, usageError, type ExitCode } from './errors.js';
import { fit, formatBytes, formatClock, formatPercent } from './format.js';
import { hubAccess, hubRequest, type HubAccess, type HubFlags } from './hub.js';

export interface OutputFlags extends HubFlags {
  json?: boolean;
}

/** Whether to print JSON: asked for, or stdout is a pipe or a file. */
export function wantsJson(flags: { json?: boolean }): boolean {
  return flags.json === true || !process.stdout.isTTY;
}

/** commander argParser for a repeatable, comma-separable --state. */
export function collectStates(value: string, previous: UploadState[]): UploadState[] {
  const states = value.split(',').map((state) => state.trim()).filter((state) => state !== '');
  for (const state of states) {
    if (!(UPLOAD_STATES as readonly string[]).includes(state)) throw new InvalidArgumentError(`${JSON.stringify(state)} is not a state: use ${UPLOAD_STATES.join(', ')}`);
  }
  return [...previous, ...(states as UploadState[])];
}

/**
 * Ids as typed must look like upload ids. They may start with "-", so commander hands over what
 * it took for an unknown option too: a misspelt flag is refused here (exit 2).
 */
function checkIds(ids: readonly string[]): void {
  const bad = ids.filter((id) => !UPLOAD_ID_PATTERN.test(id));
  if (bad.length > 0) throw usageError(bad.map((id) => `${JSON.stringify(id)} is neither an upload id nor a flag of this command`));
}

function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

function problem(text: string): void {
  process.stderr.write(`upload-hub: ${text}\n`);
}

/** The lines `status` prints on a terminal. */
export function describeStatus(status: UploadStatus): string[] {
  const lines = [
    `id        ${status.id}`,
    `name      ${status.name} (${formatBytes(status.size)}, ${status.mimeType})`,
    `owner     ${status.owner}`,
    `state     ${status.state}${status.stage === undefined ? '' : ` (stage ${status.stage}${status.stagePercent === undefined ? '' : ` ${Math.floor(status.stagePercent)}%`})`}${status.queuePosition === undefined ? '' : ` #${status.queuePosition} in queue`}`,
    `progress  ${formatPercent(status.percent)}, ${formatBytes(status.bytes)} of ${formatBytes(status.size)} received${!isTerminalState(status.state) && status.bytes < status.size ? (status.attached ? ', sending' : ', waiting for its client to resume') : ''}`,
    `created   ${new Date(status.createdAt).toISOString()}`,
    `updated   ${new Date(status.updatedAt).toISOString()}`,
  ];
  if (status.sha256 !== undefined) lines.push(`sha256    ${status.sha256}`);
  if (Object.keys(status.metadata).length > 0) lines.push(`metadata  ${Object.entries(status.metadata).map(([key, value]) => `${key}=${value}`).join(' ')}`);
  if (status.error) lines.push(`error     ${status.error.code} ${status.error.message}${status.error.stage === undefined ? '' : ` (stage ${status.error.stage})`}`);
  if (status.result !== undefined) lines.push(`result    ${JSON.stringify(status.result)}`);
  return lines;
}

export async function status(id: string, flags: OutputFlags, env: NodeJS.ProcessEnv): Promise<ExitCode> {
  checkIds([id]);
  const access = hubAccess(flags, env);
  try {
    const upload = await hubRequest<UploadStatus>(access, 'GET', `/api/uploads/${encodeURIComponent(id)}`);
    print(wantsJson(flags) ? JSON.stringify(upload) : describeStatus(upload).join('\n'));
    return EXIT.OK;
  } catch (error) {
    if (!(error instanceof UploadHubError)) throw error;
    problem(`${id}: ${error.code} ${error.message}`);
    return EXIT.FAILED;
  }
}

export interface ListFlags extends OutputFlags {
  state: UploadState[];
}

/** Every page of GET /api/uploads, following nextCursor. */
async function* listAll(access: HubAccess, states: readonly UploadState[]): AsyncGenerator<UploadStatus> {
  let cursor: string | null = null;
  do {
    const query = new URLSearchParams();
    if (states.length > 0) query.set('state', states.join(','));
    query.set('limit', '1000');
    if (cursor !== null) query.set('cursor', cursor);
    const page: { uploads: UploadStatus[]; nextCursor: string | null } = await hubRequest(access, 'GET', `/api/uploads?${query}`);
    yield* page.uploads;
    cursor = page.nextCursor;
  } while (cursor !== null);
}

export async function list(flags: ListFlags, env: NodeJS.ProcessEnv): Promise<ExitCode> {
  const access = hubAccess(flags, env);
  const json = wantsJson(flags);
  const rows: UploadStatus[] = [];
  try {
    // JSON lines go out page by page: a hub with many uploads is never held in memory here.
    for await (const upload of listAll(access, flags.state)) {
      if (json) print(JSON.stringify(upload));
      else rows.push(upload);
    }
  } catch (error) {
    if (!(error instanceof UploadHubError)) throw error;
    problem(`ls: ${error.code} ${error.message}`);
    return EXIT.FAILED;
  }
  if (json) return EXIT.OK;
  if (rows.length === 0) {
    print(flags.state.length > 0 ? `no uploads in state ${flags.state.join(' or ')}` : 'no uploads');
    return EXIT.OK;
  }
  print(`${'ID'.padEnd(24)} ${'STATE'.padEnd(10)} ${'DONE'.padStart(4)} ${'SIZE'.padStart(9)} ${'OWNER'.padEnd(12)} ${'UPDATED'.padEnd(8)} NAME`);
  for (const upload of rows) {
    print(`${fit(upload.id, 24)} ${upload.state.padEnd(10)} ${formatPercent(upload.percent).padStart(4)} ${formatBytes(upload.size).padStart(9)} ${fit(upload.owner, 12)} ${formatClock(upload.updatedAt)} ${upload.name}`);
  }
  return EXIT.OK;
}

export async function cancel(ids: readonly string[], flags: OutputFlags, env: NodeJS.ProcessEnv): Promise<ExitCode> {
  checkIds(ids);
  const access = hubAccess(flags, env);
  const json = wantsJson(flags);
  let failed = false;
  for (const id of ids) {
    try {
      const upload = await hubRequest<UploadStatus>(access, 'DELETE', `/api/uploads/${encodeURIComponent(id)}`);
      // DELETE is idempotent: an upload that had already ended keeps its state.
      if (json) print(JSON.stringify({ id, state: upload.state, ...(upload.state === 'cancelled' ? {} : { note: 'had already ended' }) }));
      else print(upload.state === 'cancelled' ? `${id} cancelled` : `${id} had already ended: ${upload.state}`);
    } catch (error) {
      if (!(error instanceof UploadHubError)) throw error;
      failed = true;
      if (json) print(JSON.stringify({ id, error: error.toJSON() }));
      problem(`${id}: ${error.code} ${error.message}`);
    }
  }
  return failed ? EXIT.FAILED : EXIT.OK;
}

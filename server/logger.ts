/** The hub's logger: pino JSON lines on stdout. LOG_LEVEL sets the level (default info; tests use silent). */
import { pino, type Level, type Logger } from 'pino';

export type LogLevelName = Level | 'silent';

/** Every level LOG_LEVEL may name, most severe first. */
export const LOG_LEVELS: readonly LogLevelName[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * Checks a level before pino sees it: pino's own error ("default level:loud must be included
 * in custom levels") names neither the variable nor the levels there are. `label` is how the
 * value was given, for the error.
 */
export function parseLogLevel(value: string, label = `LOG_LEVEL=${JSON.stringify(value)}`): LogLevelName {
  if ((LOG_LEVELS as readonly string[]).includes(value)) return value as LogLevelName;
  throw new Error(`${label}: expected one of ${LOG_LEVELS.join(', ')}`);
}

export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ level: parseLogLevel(level), base: { service: 'upload-hub' } });
}

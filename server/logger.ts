/** The hub's logger: pino JSON lines on stdout. LOG_LEVEL sets the level (default info; tests use silent). */
import { pino, type Logger } from 'pino';

export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { service: 'upload-hub' } });
}

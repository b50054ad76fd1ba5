/**
 * winston loggers for the agents and the controller: JSON lines (one object per line,
 * journald/launchd friendly) to stdout/stderr or a file; level from options or
 * WGCTL_LOG_LEVEL; every record passes through redaction before any transport sees it.
 */
import winston from 'winston';
import Transport from 'winston-transport';
import { redactText, redactValue } from './redact';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

export interface LoggerOptions {
  service: string;
  level?: LogLevel;
  /** 'stdout' (default), 'stderr', or a file path. */
  destination?: 'stdout' | 'stderr' | string;
  /** Extra transports (tests). */
  transports?: Transport[];
}

const MESSAGE = Symbol.for('message');
const LEVEL = Symbol.for('level');
const SPLAT = Symbol.for('splat');

/** The redaction format: rewrites message and metadata in place before serialization. */
const redactFormat = winston.format((info) => {
  const redacted = redactValue({ ...info }) as Record<string, unknown>;
  for (const key of Object.keys(info)) delete (info as Record<string, unknown>)[key];
  Object.assign(info, redacted);
  if (typeof info.message === 'string') info.message = redactText(info.message);
  const splat = (info as Record<symbol, unknown>)[SPLAT];
  if (Array.isArray(splat)) (info as Record<symbol, unknown>)[SPLAT] = splat.map((s) => redactValue(s));
  return info;
});

function resolveLevel(level?: string): LogLevel {
  const wanted = (level ?? process.env.WGCTL_LOG_LEVEL ?? 'info').toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(wanted)) return wanted as LogLevel;
  throw new Error(`invalid log level "${wanted}": expected one of ${LOG_LEVELS.join(', ')}`);
}

export function createLogger(options: LoggerOptions): winston.Logger {
  // winston formats every record and lets the transports drop the ones below their level, so
  // without this first format each debug record would be redacted and serialized for nothing.
  let self: winston.Logger | undefined;
  const belowLevel = winston.format((info) => {
    const level = (info as Record<symbol, unknown>)[LEVEL] ?? info.level;
    return self && typeof level === 'string' && !self.isLevelEnabled(level) ? false : info;
  });
  const format = winston.format.combine(
    belowLevel(),
    winston.format.errors({ stack: false }),
    redactFormat(),
    winston.format.timestamp(),
    winston.format.json(),
  );
  const transports: Transport[] = [...(options.transports ?? [])];
  if (transports.length === 0) {
    const destination = options.destination ?? 'stdout';
    if (destination === 'stdout' || destination === 'stderr') {
      transports.push(
        new winston.transports.Console({
          stderrLevels: destination === 'stderr' ? [...LOG_LEVELS] : ['error', 'warn'],
        }),
      );
    } else {
      transports.push(new winston.transports.File({ filename: destination }));
    }
  }
  self = winston.createLogger({
    level: resolveLevel(options.level),
    defaultMeta: { service: options.service, pid: process.pid },
    format,
    transports,
  });
  return self;
}

/** A transport that keeps the serialized lines in memory (tests, `--json` capture). */
export class MemoryTransport extends Transport {
  readonly lines: string[] = [];

  override log(info: Record<string | symbol, unknown>, next: () => void): void {
    this.lines.push(String(info[MESSAGE]));
    next();
  }
}

/** A logger that drops everything (tests, library use). */
export function silentLogger(): winston.Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}

export type Logger = winston.Logger;

/**
 * winston loggers for the agents and the controller: JSON lines (one object per line,
 * journald/launchd friendly) to stdout/stderr or a file; level from options or
 * WGCTL_LOG_LEVEL; every record passes through redaction before any transport sees it.
 */
import type winston from 'winston';
import Transport from 'winston-transport';
import { redactText, redactValue } from './redact';
import { cutStrings, cutText } from './bound';

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

/**
 * Each string of a record (message, metadata) is cut to this, its length kept: half of
 * syslog's 2048-octet line (RFC 5424 6.1, what every receiver SHOULD take) would be too short
 * for a tool's stderr; 4 KiB keeps a pfctl/nft error listing whole.
 */
export const MAX_LOG_STRING_BYTES = 4 * 1024;

/**
 * A serialized record longer than this is replaced by a short one saying so. journald splits a
 * stdout line longer than LineMax (default 48 KiB, its LINE_MAX) into several entries, which
 * breaks one-JSON-object-per-line readers; a third of that leaves room for escaping.
 */
export const MAX_LOG_LINE_BYTES = 16 * 1024;

/** Message kept in the record that replaces an over-long line. */
const CUT_LINE_MESSAGE_BYTES = 1024;

/**
 * winston, loaded by the first logger made rather than by importing this library: the CLI's
 * config checks import it (for shownValue) on the path to its first RPCs, where loading winston
 * cost ~3 ms before any record was written.
 */
function winstonModule(): typeof winston {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('winston') as typeof winston;
}

type Info = winston.Logform.TransformableInfo;

/** Redaction, then bounding: rewrites message and metadata in place before serialization. */
function redactRecord(info: Info): Info {
  // Redact before cutting: a secret split by the cut would no longer match its pattern.
  const bounded = (value: unknown) => cutStrings(redactValue(value), MAX_LOG_STRING_BYTES);
  const redacted = bounded({ ...info }) as Record<string, unknown>;
  for (const key of Object.keys(info)) delete (info as Record<string, unknown>)[key];
  Object.assign(info, redacted);
  if (typeof info.message === 'string') info.message = cutText(redactText(info.message), MAX_LOG_STRING_BYTES);
  const splat = (info as Record<symbol, unknown>)[SPLAT];
  if (Array.isArray(splat)) (info as Record<symbol, unknown>)[SPLAT] = splat.map(bounded);
  return info;
}

/**
 * The last word on length: a record still over MAX_LOG_LINE_BYTES once serialized (many
 * fields, huge keys) becomes one that keeps level, message head and origin and says what was cut.
 */
function boundLine(info: Info): Info {
  const record = info as Record<string | symbol, unknown>;
  const line = record[MESSAGE];
  if (typeof line !== 'string' || line.length * 3 <= MAX_LOG_LINE_BYTES) return info;
  const bytes = Buffer.byteLength(line);
  if (bytes <= MAX_LOG_LINE_BYTES) return info;
  const fields = Object.keys(info).slice(0, 32).map((key) => cutText(key, 64));
  record[MESSAGE] = JSON.stringify({
    level: info.level,
    message: cutText(String(info.message), CUT_LINE_MESSAGE_BYTES),
    service: record.service,
    pid: record.pid,
    timestamp: record.timestamp,
    lineCut: { bytes, fields },
  });
  return info;
}

/** `level`, else $WGCTL_LOG_LEVEL, else info, as a LogLevel; throws naming the levels when it is none. */
export function parseLogLevel(level?: string): LogLevel {
  const wanted = (level ?? process.env.WGCTL_LOG_LEVEL ?? 'info').toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(wanted)) return wanted as LogLevel;
  throw new Error(`invalid log level "${wanted}": expected one of ${LOG_LEVELS.join(', ')}`);
}

export function createLogger(options: LoggerOptions): winston.Logger {
  const winston = winstonModule();
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
    winston.format(redactRecord)(),
    winston.format.timestamp(),
    winston.format.json(),
    winston.format(boundLine)(),
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
    level: parseLogLevel(options.level),
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
  const winston = winstonModule();
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}

export type Logger = winston.Logger;

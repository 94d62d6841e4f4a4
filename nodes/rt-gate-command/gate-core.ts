// Pure logic of rt-gate-command: command templates, acknowledgement matching,
// result records. No Node-RED, no sockets, no threads.
import { CodedError, type MsgParams } from '../shared/coded';

/** Codes of bad input (catalog rt-gate-command.codes.<code>). */
export const GATE_INPUT_CODES = ['no-gate', 'missing-field', 'line-break', 'oversize'] as const;
export type GateInputCode = (typeof GATE_INPUT_CODES)[number];

export class GateInputError extends CodedError<GateInputCode> {
  constructor(code: GateInputCode, params: MsgParams = {}) {
    super(code, params);
    this.name = 'GateInputError';
  }
}

export const MAX_COMMAND_BYTES = 1024;

/** Gate id: a non-empty string or a finite number. */
export function checkGate(v: unknown): string {
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'string' && v.trim() !== '' && !/[\r\n]/.test(v)) return v.trim();
  throw new GateInputError('no-gate');
}

/** Unescapes \r \n \t \\ in a template typed into the editor. */
export function unescapeTemplate(t: string): string {
  return t.replace(/\\([rnt\\])/g, (_, c: string) => (c === 'r' ? '\r' : c === 'n' ? '\n' : c === 't' ? '\t' : '\\'));
}

const FIELD = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Fields a template uses. */
export function templateFields(template: string): string[] {
  return [...template.matchAll(FIELD)].map((m) => m[1]);
}

/**
 * Renders a command: {field} placeholders take the value of that field in
 * `fields`. A missing field, a value with a line break, or a result longer than
 * maxBytes is a GateInputError (code missing-field, line-break, oversize).
 */
export function renderCommand(template: string, fields: Record<string, unknown>, maxBytes = MAX_COMMAND_BYTES): string {
  const out = template.replace(FIELD, (_, name: string) => {
    const v = fields[name];
    if (v === undefined || v === null || (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')) {
      throw new GateInputError('missing-field', { name });
    }
    const s = String(v);
    if (/[\r\n]/.test(s)) throw new GateInputError('line-break', { name });
    return s;
  });
  if (Buffer.byteLength(out) > maxBytes) {
    throw new GateInputError('oversize', { bytes: Buffer.byteLength(out), max: maxBytes });
  }
  return out;
}

/** Validates an acknowledgement pattern (a regular expression source; empty = no acknowledgement). */
export function compileAck(pattern: string): RegExp | null {
  if (!pattern) return null;
  return new RegExp(pattern);
}

/**
 * Splits the byte stream from the controller into lines (CR, LF or CRLF) and
 * classifies each one against the acknowledgement pattern, where {gate} in the
 * pattern stands for the gate of the command in flight.
 */
export class LineSplitter {
  private buf = '';
  constructor(private readonly maxLine = 4096) {}
  /** Feeds bytes; returns complete lines (without terminators). Overlong garbage is cut into lines. */
  push(chunk: string): string[] {
    this.buf += chunk;
    const lines: string[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      lines.push(this.buf.slice(0, m.index));
      this.buf = this.buf.slice(m.index + m[0].length);
    }
    if (this.buf.length > this.maxLine) {
      lines.push(this.buf);
      this.buf = '';
    }
    return lines;
  }
  reset(): void {
    this.buf = '';
  }
}

export function ackMatches(ack: RegExp, line: string, gate: string): boolean {
  const src = ack.source.replace(/\\?\{gate\\?\}/g, gate.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(src, ack.flags).test(line);
}

export type GateResult = 'ok' | 'timeout' | 'error' | 'dropped';

/** Exponential backoff with +-20 % jitter, bounded: the one of nodes/shared/backoff.ts. */
export { reconnectDelay } from '../shared/backoff';

// User-facing messages as data. A core module (plain TypeScript, no Node-RED)
// never words a message for the user: it reports a stable code and its
// parameters, and the node adapter turns that into text from its catalog
// (nodes/<type>/locales/<lang>/<type>.json, key `<type>.codes.<code>`, the
// parameters interpolated as __name__). Codes are kebab-case, stable, and safe
// to switch on in a flow (a Catch node sees them as msg.error.code).
// Plain data: a Coded value crosses a MessagePort unchanged (structured clone).

/** A parameter: a value shown as is, or a nested coded message (translated first). */
export type MsgParam = string | number | boolean | Coded;
export type MsgParams = Readonly<Record<string, MsgParam>>;

export interface Coded {
  readonly code: string;
  readonly params?: MsgParams;
}

/**
 * A message a core hands up: coded, or a verbatim text from outside this
 * package (an operating-system or library error message, a text the adapter
 * already translated).
 */
export type Msg = Coded | string;

export function coded<C extends string>(code: C, params?: MsgParams): Coded & { code: C } {
  return params === undefined ? { code } : { code, params };
}

export function isCoded(v: unknown): v is Coded {
  return typeof v === 'object' && v !== null && typeof (v as { code?: unknown }).code === 'string' && !(v instanceof Error);
}

/** A short, language-neutral rendering for logs and stack traces: `code` or `code {"param":...}`. */
export function describeCoded(c: Coded): string {
  return c.params && Object.keys(c.params).length > 0 ? `${c.code} ${JSON.stringify(c.params)}` : c.code;
}

/**
 * An error with a code and parameters instead of a worded message. Its
 * `message` is the language-neutral form (describeCoded); adapters show the
 * catalog text for the code instead.
 */
export class CodedError<C extends string = string> extends Error implements Coded {
  readonly code: C;
  readonly params: MsgParams;
  constructor(code: C, params: MsgParams = {}) {
    super(describeCoded({ code, params }));
    this.name = 'CodedError';
    this.code = code;
    this.params = params;
  }
}

export function isCodedError(e: unknown): e is CodedError {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'string' && typeof (e as { params?: unknown }).params === 'object' && (e as { params?: unknown }).params !== null;
}

/**
 * Renders a message with a translate function (code + flat parameters -> text):
 * nested coded parameters are rendered first; verbatim strings pass through.
 */
export function renderMsg(m: Msg, translate: (code: string, params: Record<string, string | number | boolean>) => string): string {
  if (typeof m === 'string') return m;
  const flat: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(m.params ?? {})) flat[k] = isCoded(v) ? renderMsg(v, translate) : v;
  return translate(m.code, flat);
}

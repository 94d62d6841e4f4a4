// Adapter side of coded messages (see coded.ts): the text of a core's code
// comes from the node's own catalog, key `<type>.codes.<code>`, with the
// parameters interpolated by RED._ (__name__). Used by the node adapters only.
import { type Coded, isCodedError, type Msg, renderMsg } from './coded';
import type { NodeAPI } from './red-types';

export interface CoreText {
  /** The text of a coded message (or a verbatim string as is). */
  text(m: Msg): string;
  /** The text of an error: a CodedError from its code, any other error its message. */
  errorText(err: unknown): string;
  /**
   * The error to hand to done(err) / node.error: a CodedError becomes an Error
   * with the catalog text, keeping its name, its code (a Catch node sees it as
   * msg.error.code) and its stack frames; any other error is returned as is.
   */
  error(err: unknown): Error;
}

export function coreText(RED: Pick<NodeAPI, '_'>, type: string): CoreText {
  const translate = (code: string, params: Record<string, string | number | boolean>): string => RED._(`${type}.codes.${code}`, params);
  const text = (m: Msg): string => renderMsg(m, translate);
  const errorText = (err: unknown): string => (isCodedError(err) ? text(err as Coded) : err instanceof Error ? err.message : String(err));
  return {
    text,
    errorText,
    error(err: unknown): Error {
      if (!isCodedError(err)) return err instanceof Error ? err : new Error(String(err));
      const msg = errorText(err);
      const e = new Error(msg) as Error & { code: string };
      // The worded error reads like any other ("Error: ..." in the log and msg.error.message), not "CodedError: ...".
      e.name = err.name === 'CodedError' ? 'Error' : err.name;
      e.code = err.code;
      const frames = err.stack?.split('\n').slice(1) ?? [];
      e.stack = [`${e.name}: ${msg}`, ...frames].join('\n');
      return e;
    },
  };
}

// The en-US message catalogs of the nodes, for tests of coded messages: the
// English text of a code as RED._ renders it (__name__ interpolation, nested
// coded parameters first). test/unit/shared/coded.test.ts checks this against
// Node-RED's own i18n.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { type Msg, renderMsg } from '../../nodes/shared/coded';
import { repoRoot } from './util';

const cache = new Map<string, Record<string, unknown>>();

/** The `<type>` section of nodes/<type>/locales/en-US/<type>.json. */
export function catalog(type: string): Record<string, unknown> {
  let c = cache.get(type);
  if (!c) {
    const file = join(repoRoot, 'nodes', type, 'locales', 'en-US', `${type}.json`);
    c = (JSON.parse(readFileSync(file, 'utf8')) as Record<string, Record<string, unknown>>)[type];
    cache.set(type, c);
  }
  return c;
}

/** The catalog text of `<type>.codes.<code>`, or undefined. */
export function codeText(type: string, code: string): string | undefined {
  const t = (catalog(type).codes as Record<string, unknown> | undefined)?.[code];
  return typeof t === 'string' ? t : undefined;
}

/** The English text of a coded message (or a CodedError) of node `type`; throws on a missing key or parameter. */
export function en(type: string, m: Msg): string {
  return renderMsg(m, (code, params) => {
    const text = codeText(type, code);
    if (text === undefined) throw new Error(`no catalog text ${type}.codes.${code}`);
    return text.replace(/__([A-Za-z0-9_]+?)__/g, (_, k: string) => {
      if (!(k in params)) throw new Error(`${type}.codes.${code}: no parameter ${k}`);
      return String(params[k]);
    });
  });
}

// Minimal structural types for the parts of the Node-RED runtime API that our
// adapters use. Kept here (not @types/node-red) so the adapters type-check
// against what Node-RED 4.1 actually passes, with no extra dependency.

export interface NodeMessage {
  _msgid?: string;
  topic?: string;
  payload?: unknown;
  [key: string]: unknown;
}

export type SendFn = (msg: NodeMessage | null | Array<NodeMessage | NodeMessage[] | null>) => void;
export type DoneFn = (err?: Error) => void;

export interface NodeStatus {
  fill?: 'red' | 'green' | 'yellow' | 'blue' | 'grey';
  shape?: 'ring' | 'dot';
  text?: string;
}

export interface NodeDef {
  id: string;
  type: string;
  name?: string;
  z?: string;
  [key: string]: unknown;
}

export interface ContextStore {
  get(key: string, store?: string): unknown;
  get(key: string, store: string | undefined, cb: (err: Error | null, value: unknown) => void): void;
  set(key: string, value: unknown, store?: string): void;
  set(key: string, value: unknown, store: string | undefined, cb: (err: Error | null) => void): void;
}

export interface NodeContext extends ContextStore {
  flow: ContextStore;
  global: ContextStore;
}

export interface Node {
  id: string;
  type: string;
  name?: string;
  z?: string;
  on(event: 'input', fn: (msg: NodeMessage, send: SendFn, done: DoneFn) => void): void;
  on(event: 'close', fn: (removed: boolean, done: () => void) => void): void;
  on(event: string, fn: (...args: never[]) => void): void;
  send(msg: NodeMessage | null | Array<NodeMessage | NodeMessage[] | null>): void;
  status(status: NodeStatus | Record<string, never>): void;
  log(msg: unknown): void;
  warn(msg: unknown): void;
  error(err: unknown, msg?: NodeMessage): void;
  debug(msg: unknown): void;
  trace(msg: unknown): void;
  context(): NodeContext;
  receive(msg: NodeMessage): void;
}

export interface HttpRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  params?: Record<string, string>;
}
export interface HttpResponse {
  status(code: number): HttpResponse;
  set(field: string, value: string): HttpResponse;
  send(body: string): void;
  end(): void;
}
export interface HttpApp {
  get(path: string, ...handlers: Array<(req: HttpRequest, res: HttpResponse, next?: () => void) => void>): void;
  post?(path: string, ...handlers: Array<(req: HttpRequest, res: HttpResponse, next?: () => void) => void>): void;
  _router?: { stack: Array<{ route?: { path?: string } }> };
}

export interface RedSettings {
  userDir?: string;
  httpNodeRoot?: string | false;
  [key: string]: unknown;
}

export interface NodeAPI {
  nodes: {
    createNode(node: object, def: NodeDef): void;
    registerType(type: string, ctor: new (def: never) => unknown, opts?: { credentials?: Record<string, { type: string }> }): void;
    registerType(type: string, ctor: (this: never, def: never) => void, opts?: { credentials?: Record<string, { type: string }> }): void;
    getNode(id: string): unknown;
  };
  settings: RedSettings;
  httpNode?: HttpApp;
  httpAdmin?: HttpApp;
  auth?: { needsPermission(perm: string): (req: HttpRequest, res: HttpResponse, next: () => void) => void };
  log: {
    info(msg: unknown): void;
    warn(msg: unknown): void;
    error(msg: unknown): void;
    debug(msg: unknown): void;
  };
  util: {
    cloneMessage<T>(msg: T): T;
    getMessageProperty(msg: object, prop: string): unknown;
  };
  events?: { on(ev: string, fn: (...a: unknown[]) => void): void; removeListener(ev: string, fn: (...a: unknown[]) => void): void };
  hooks?: {
    add(name: string, fn: (ev: unknown) => unknown): void;
    remove(name: string): void;
  };
  _(key: string, subs?: Record<string, unknown>): string;
}

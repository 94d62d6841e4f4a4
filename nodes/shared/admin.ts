// Admin HTTP endpoints of the nodes (the editor's calls): the permission check
// every one of them starts with.
import type { HttpRequest, HttpResponse, NodeAPI } from './red-types';

export type AdminHandler = (req: HttpRequest, res: HttpResponse, next?: () => void) => void;

/**
 * The middleware that lets a request through only with `perm` (Node-RED's
 * adminAuth). Without adminAuth (RED.auth absent, as in some embeddings and
 * test runtimes) it lets everything through, as Node-RED's own nodes do.
 */
export function needs(RED: Pick<NodeAPI, 'auth'>, perm: string): AdminHandler {
  if (RED.auth) return RED.auth.needsPermission(perm) as AdminHandler;
  return (_req, _res, next) => next?.();
}

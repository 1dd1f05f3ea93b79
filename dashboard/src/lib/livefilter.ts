// livefilter.ts - the live stream's filter applied in the browser too, with the server's
// semantics (httpd/stream.c): AND across keys, OR within one key, empty = everything.

export type StreamEvent = Record<string, unknown>;

export interface Filter {
  types: Set<string>;
  pid: number[];
  comm: string[];
  service: string[];
  node: string[];
}

export function filterOf(types: string[], f: { pid: string; comm: string; service: string; node: string }): Filter {
  const list = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);
  return {
    types: new Set(types),
    pid: list(f.pid).map(Number).filter((x) => Number.isInteger(x)),
    comm: list(f.comm),
    service: list(f.service),
    node: list(f.node),
  };
}

/** The server's semantics: AND across keys, OR within one. */
export function matches(ev: StreamEvent, f: Filter): boolean {
  if (f.types.size && !f.types.has(String(ev.type))) return false;
  if (f.pid.length && !f.pid.includes(Number(ev.pid))) return false;
  if (f.comm.length && !f.comm.includes(String(ev.comm ?? ''))) return false;
  if (f.service.length && !f.service.includes(String(ev.service ?? ''))) return false;
  if (f.node.length && !f.node.includes(String(ev.node ?? ''))) return false;
  return true;
}


// route.ts - hash routes, so every view is a link that works when pasted (kprobed serves
// index.html for "/", and the hash never reaches the server):
//   #/                     incidents     #/?q=pay-00017&from=24h&service=...
//   #/txn/<key>[?node=<id>] one transaction: root-cause chain, causal graph, node details
//   #/timeline?from=&to=&lane=thread&pid=...
//   #/live?type=write,fsync&comm=...
//   #/query?q=<text>
import { useEffect, useState } from 'react';

export interface Route {
  view: 'incidents' | 'txn' | 'timeline' | 'live' | 'query' | 'notfound';
  arg: string; // txn key
  params: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const h = hash.replace(/^#/, '') || '/';
  const qi = h.indexOf('?');
  const path = qi >= 0 ? h.slice(0, qi) : h;
  const params = new URLSearchParams(qi >= 0 ? h.slice(qi + 1) : '');
  const segs = path.split('/').filter(Boolean);
  if (segs.length === 0 || segs[0] === 'incidents') return { view: 'incidents', arg: '', params };
  if (segs[0] === 'txn' && segs.length >= 2) {
    let arg = segs.slice(1).join('/');
    try {
      arg = decodeURIComponent(arg);
    } catch {
      /* keep it raw */
    }
    return { view: 'txn', arg, params };
  }
  if (segs[0] === 'timeline' || segs[0] === 'live' || segs[0] === 'query')
    return { view: segs[0], arg: '', params };
  return { view: 'notfound', arg: path, params };
}

export function href(path: string, params?: Record<string, string | number | bigint | undefined | null>): string {
  const p = new URLSearchParams();
  if (params) for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return `#${path}${s ? '?' + s : ''}`;
}

/** A transaction by key; with node, that exact symptom (a key can name several, e.g. a
 * transaction id reused by a retry or a second run). */
export function txnHref(key: string, node?: unknown): string {
  return `#/txn/${encodeURIComponent(key)}${node !== undefined ? `?node=${String(node)}` : ''}`;
}

/** Goes to a route. replace: no new history entry; silent: only the address bar changes (a view
 * keeping its own state in the URL, like the timeline's window, does not re-render from it). */
export function navigate(h: string, opts: { replace?: boolean; silent?: boolean } = {}) {
  if (opts.replace || opts.silent) {
    history.replaceState(null, '', h);
    if (!opts.silent) window.dispatchEvent(new HashChangeEvent('hashchange'));
  } else {
    location.hash = h.replace(/^#/, '');
  }
}

export function useRoute(): Route {
  const [r, setR] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setR(parseHash(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return r;
}

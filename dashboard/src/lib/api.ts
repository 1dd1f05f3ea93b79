// api.ts - kprobed's HTTP API as the console uses it: bearer token from localStorage, JSON with
// exact 64-bit integers (json.ts), errors as ApiError carrying the server's message and, for
// queries, the byte position it points at. Types mirror appliance/*.c and graph/gstore.h.
import { parseJson } from './json';

export class ApiError extends Error {
  status: number;
  position: number | null;
  constructor(status: number, message: string, position: number | null = null) {
    super(message);
    this.status = status;
    this.position = position;
  }
}

const TOKEN_KEY = 'kprobe.token';
export function getToken(): string {
  try {
    return localStorage.getItem(TOKEN_KEY) ?? '';
  } catch {
    return '';
  }
}
export function setToken(t: string) {
  try {
    if (t) localStorage.setItem(TOKEN_KEY, t);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* ignore */
  }
}

type Listener = (status: number) => void;
const authListeners = new Set<Listener>();
/** Called with 401/403 whenever the server refuses the token (the shell shows the token box). */
export function onAuthError(l: Listener) {
  authListeners.add(l);
  return () => authListeners.delete(l);
}

export async function request<T = unknown>(
  path: string,
  init: { method?: string; body?: string; signal?: AbortSignal; raw?: boolean } = {},
): Promise<T> {
  const headers: Record<string, string> = {};
  const tok = getToken();
  if (tok) headers.Authorization = `Bearer ${tok}`;
  if (init.body !== undefined) headers['Content-Type'] = 'text/plain; charset=utf-8';
  let res: Response;
  try {
    res = await fetch(path, { method: init.method ?? 'GET', body: init.body, headers, signal: init.signal });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, `kprobed did not answer (${(e as Error).message}); is it running?`);
  }
  const text = await res.text();
  if (!res.ok) {
    if (res.status === 401 || res.status === 403) authListeners.forEach((l) => l(res.status));
    let msg = `${res.status} ${res.statusText}`;
    let pos: number | null = null;
    try {
      const j = parseJson(text) as { error?: string; position?: number };
      if (j && typeof j.error === 'string') msg = j.error;
      if (j && typeof j.position === 'number' && j.position >= 0) pos = j.position;
    } catch {
      if (text) msg = text.slice(0, 300);
    }
    throw new ApiError(res.status, msg, pos);
  }
  if (init.raw) return text as T;
  try {
    return parseJson(text) as T;
  } catch (e) {
    throw new ApiError(res.status, `kprobed sent JSON this console cannot read: ${(e as Error).message}`);
  }
}

export function qs(params: Record<string, string | number | bigint | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

/* ------------------------------------------------------------------ shapes */

export type Int = number | bigint;

export interface Incident {
  id: Int;
  time_ns: bigint;
  start_ns: bigint;
  end_ns: bigint;
  duration_ns: Int;
  pid: number;
  host: Int;
  key: string;
  service: string;
  comm: string;
  text: string;
  root_cause: string;
  root_cause_pid: number;
  mechanism: string;
  steps: number;
}
export interface IncidentPage {
  incidents: Incident[];
  next: { after_time: Int; after_id: Int } | null;
}

export interface ChainStep {
  id: Int;
  kind: string;
  edge?: string;
  pid: number;
  tid: number;
  host?: Int;
  comm: string;
  service: string;
  text: string;
  error?: boolean;
  latency_ns: Int;
  share?: number;
  start_ns: Int;
  end_ns: Int;
}
export interface RootCause {
  key: string;
  symptom: ChainStep;
  chain: ChainStep[];
  root_cause: ChainStep | null;
  stop: string;
}

export interface GraphNode {
  id: Int;
  kind: string;
  flags: number;
  pid: number;
  tid: number;
  host: Int;
  service: string;
  start_ns: Int;
  end_ns: Int;
  weight_ns: Int;
  labels: Record<string, string>;
  depth: number;
  missing?: boolean;
}
export interface GraphEdge {
  src: Int;
  dst: Int;
  kind: string;
  weight_ns: Int;
}
export interface Graph {
  key: string;
  root: Int;
  direction: string;
  truncated: boolean;
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export interface Bar {
  start: Int;
  end: Int;
  type: string;
  count: number;
  busy_ns: Int;
  ret?: number;
  cpu?: number;
  pid?: number;
  tid?: number;
}
export interface Lane {
  key: string;
  label: string;
  node_id: Int;
  skew_ns: Int;
  bars: Bar[];
}
export interface Timeline {
  from: Int;
  to: Int;
  lane: string;
  exact: boolean;
  resolution_ns: Int;
  events: number;
  max_bars: number;
  truncated: boolean;
  lanes: Lane[];
}

export interface QueryResult {
  columns?: { name: string; type: string }[];
  rows?: unknown[][];
  stats?: Record<string, unknown>;
  [k: string]: unknown;
}

/** GET /api/v1/replay/processes (appliance/replayapi.c, api_replay_processes). */
export interface ReplayProcess {
  pid: number;
  host: Int;
  comm: string;
  service: string;
  role: 'transaction' | 'chain';
  start_ns: Int;
  end_ns: Int;
  captured: boolean;
  node?: Int;
  from_ns?: Int;
  to_ns?: Int;
  records?: number;
  exec_seen?: boolean;
  exit_seen?: boolean;
  command?: string[];
}
export interface ReplayProcesses {
  incident: string;
  processes: ReplayProcess[];
  hint: string | null;
}

/** POST /api/v1/replay's body. Times travel as decimal strings (epoch ns exceed a double). */
export interface ReplayRequest {
  pid?: number;
  from?: string;
  to?: string;
  node?: string;
  incident?: string;
  command?: string[];
  delays?: string[];
  fails?: string[];
  time_scale?: number;
  timeout_ms?: number;
}

/** POST /api/v1/replay's answer (replay/report.c replay_result_json, plus id/recording/command). */
export interface ReplayResult {
  id: string;
  state: 'done' | 'diverged' | 'failed' | 'timed out';
  recording?: {
    pid: number;
    node: Int;
    from_ns: Int;
    to_ns: Int;
    calls: number;
    threads: number;
    processes: number;
    bytes: number;
    lost: number;
    exec_seen: boolean;
    exit_seen: boolean;
    command: string[];
    executable: string;
    note: string;
  };
  command?: string[];
  outcome?: string;
  recorded_outcome?: string;
  changed?: boolean;
  outcome_change?: string | null;
  exit_status?: number | null;
  exit_signal?: number | null;
  recorded_exit_status?: number | null;
  reason?: string;
  diverged?: boolean;
  failed?: boolean;
  divergence?: {
    thread: number;
    recorded_thread: number;
    ordinal: number;
    seq: Int;
    call: string;
    recorded: string;
    what: string;
    expected: string | null;
    actual: string | null;
  } | null;
  report?: string;
  notes?: string;
  stdout?: string;
  stdout_truncated?: boolean;
  recorded_stdout?: string;
  recorded_stdout_truncated?: boolean;
  stdout_identical?: boolean | null;
  stderr?: string;
  stderr_truncated?: boolean;
  stats?: {
    served: number;
    compared: number;
    passed: number;
    synthesized: number;
    modeled: number;
    held: number;
    order_breaks: number;
    wall_ms: number;
    virtual_ms: number;
  };
  error?: string;
}

/* ------------------------------------------------------------------ calls */

export const api = {
  incidents: (p: Record<string, string | number | bigint | undefined>, signal?: AbortSignal) =>
    request<IncidentPage>(`/api/v1/incidents${qs(p)}`, { signal }),
  rootcause: (key: string, signal?: AbortSignal) =>
    request<RootCause>(`/api/v1/rootcause/${encodeURIComponent(key)}`, { signal }),
  graph: (key: string, p: Record<string, string | number | undefined> = {}, signal?: AbortSignal) =>
    request<Graph>(`/api/v1/graph/${encodeURIComponent(key)}${qs(p)}`, { signal }),
  timeline: (p: Record<string, string | number | bigint | undefined>, signal?: AbortSignal) =>
    request<Timeline>(`/api/v1/timeline${qs(p)}`, { signal }),
  query: (text: string, signal?: AbortSignal) =>
    request<QueryResult>('/api/v1/query', { method: 'POST', body: text, signal }),
  replayProcesses: (key: string, signal?: AbortSignal) =>
    request<ReplayProcesses>(`/api/v1/replay/processes${qs({ incident: key })}`, { signal }),
  replayRun: (body: ReplayRequest, signal?: AbortSignal) =>
    request<ReplayResult>('/api/v1/replay', { method: 'POST', body: JSON.stringify(body), signal }),
  replayGet: (id: string, signal?: AbortSignal) =>
    request<ReplayResult>(`/api/v1/replay/${encodeURIComponent(id)}`, { signal }),
};

/** ws(s)://host/api/v1/stream?... with the token as access_token (browsers cannot set headers). */
export function streamUrl(params: Record<string, string> = {}): string {
  const u = new URL('/api/v1/stream', location.href);
  u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [k, v] of Object.entries(params)) if (v) u.searchParams.set(k, v);
  const tok = getToken();
  if (tok) u.searchParams.set('access_token', tok);
  return u.toString();
}

/** Quotes a value as a query-language string literal. */
export function sqlStr(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

// nodes.ts - how causal-graph nodes read to a person: a title per kind, a "who" line, and the
// kernel events query behind a node.
import type { ChainStep, GraphNode } from './api';
import { big, fmtDur } from './ns';

export const KIND_LABEL: Record<string, string> = {
  span: 'span',
  request: 'request',
  syscall: 'syscall',
  offcpu: 'off-CPU',
  reclaim: 'reclaim',
  faults: 'page faults',
  tcp: 'TCP',
  retransmit: 'retransmit',
  process: 'process',
  symptom: 'symptom',
};

export const KERNEL_KINDS = new Set(['offcpu', 'reclaim', 'faults', 'retransmit']);

export function nodeTitle(n: GraphNode): string {
  const L = n.labels ?? {};
  if (n.kind === 'process') return `${L.comm || L.text || 'process'} PID ${n.pid}`;
  if (L.text) return L.text;
  if (n.kind === 'syscall') return [L.syscall, L.path].filter(Boolean).join(' ') || 'syscall';
  return KIND_LABEL[n.kind] ?? n.kind;
}

export function nodeWho(n: GraphNode | ChainStep): string {
  const comm = 'labels' in n ? n.labels?.comm : n.comm;
  const who = [n.service, comm && comm !== n.service ? comm : ''].filter(Boolean).join(' · ');
  return `${who || 'unknown'}${n.pid ? ` PID ${n.pid}` : ''}${n.tid && n.tid !== n.pid ? ` TID ${n.tid}` : ''}`;
}

export function stepTitle(s: ChainStep): string {
  if (s.kind === 'process') return `${s.comm || s.text || 'process'} PID ${s.pid}`;
  return s.text || KIND_LABEL[s.kind] || s.kind;
}

/** The query that lists a node's kernel events: its thread (or process) during its time. */
export function nodeEventsQuery(n: { pid: number; tid: number; host?: unknown; start_ns: unknown; end_ns: unknown; kind: string }): string | null {
  if (!n.pid && !n.tid) return null;
  const start = big(n.start_ns);
  let end = big(n.end_ns);
  if (end < start) end = start;
  const slack = 10_000_000_000n; // events that began up to 10 s before and still ran into it
  const where = [
    n.tid && n.kind !== 'process' ? `tid = ${n.tid}` : `pid = ${n.pid}`,
    `ts BETWEEN ${start - slack} AND ${end}`,
    `ts + dur >= ${start}`,
  ];
  const host = big(n.host);
  if (host > 0n && host < 1n << 63n) where.push(`node_id = ${host}`);
  return (
    'SELECT ts, dur, type, pid, tid, cpu, ret, fd, bytes, reason, waker, runq, holder_tid, pages, kind, count\n' +
    `FROM events\nWHERE ${where.join(' AND ')}\nORDER BY ts LIMIT 200`
  );
}

export function edgeLabel(kind: string, weight: unknown): string {
  const w = big(weight);
  return w > 0n ? `${fmtDur(w)} · ${kind}` : kind;
}

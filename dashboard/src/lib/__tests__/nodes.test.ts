import { describe, expect, it } from 'vitest';
import { filterOf, matches } from '../livefilter';
import { nodeEventsQuery, nodeTitle } from '../nodes';

describe('live filter', () => {
  const ev = { type: 'fsync', pid: 42, comm: 'settlement', service: 'settlement-svc', node: 'n1' };
  it('AND across keys, OR within one, empty = all', () => {
    expect(matches(ev, filterOf([], { pid: '', comm: '', service: '', node: '' }))).toBe(true);
    expect(matches(ev, filterOf(['write', 'fsync'], { pid: '', comm: '', service: '', node: '' }))).toBe(true);
    expect(matches(ev, filterOf(['write'], { pid: '', comm: '', service: '', node: '' }))).toBe(false);
    expect(matches(ev, filterOf(['fsync'], { pid: '7, 42', comm: '', service: '', node: '' }))).toBe(true);
    expect(matches(ev, filterOf(['fsync'], { pid: '7', comm: '', service: '', node: '' }))).toBe(false);
    expect(matches(ev, filterOf([], { pid: '', comm: 'settlement', service: 'x', node: '' }))).toBe(false);
    expect(matches(ev, filterOf([], { pid: '', comm: '', service: '', node: 'n1,n2' }))).toBe(true);
  });
});

describe('nodes', () => {
  const base = { id: 7, kind: 'syscall', flags: 0, pid: 2841, tid: 2842, host: 123n, service: 's', weight_ns: 5, labels: {}, depth: 1 };
  it('the kernel events query of a node keeps exact ns and scopes thread and host', () => {
    const q = nodeEventsQuery({ ...base, start_ns: 1795342327984635321n, end_ns: 1795342328984635321n })!;
    expect(q).toContain('tid = 2842');
    expect(q).toContain('node_id = 123');
    expect(q).toContain('ts + dur >= 1795342327984635321');
    expect(q).toContain('AND 1795342328984635321');
    expect(q).toContain('BETWEEN 1795342317984635321');
    const p = nodeEventsQuery({ ...base, kind: 'process', start_ns: 1n, end_ns: 2n })!;
    expect(p).toContain('pid = 2841');
    expect(p).not.toContain('tid =');
    expect(nodeEventsQuery({ ...base, pid: 0, tid: 0, start_ns: 1n, end_ns: 2n })).toBeNull();
  });
  it('titles', () => {
    expect(nodeTitle({ ...base, kind: 'process', labels: { comm: 'batch-job' }, start_ns: 0, end_ns: 0 })).toBe('batch-job PID 2841');
    expect(nodeTitle({ ...base, labels: { syscall: 'fsync', path: '/var/lib/ledger/x' }, start_ns: 0, end_ns: 0 })).toBe('fsync /var/lib/ledger/x');
  });
});

// Txn.tsx - one transaction: what went wrong (the symptom), the root-cause chain from the
// symptom down to the kernel cause with the latency each step explains, the causal graph around
// it, and the selected node's fields and kernel events. Opened from the incident list, the
// search box, or a deep link (#/txn/<key>).
import { useMemo, useState } from 'react';
import { ApiError, api, type ChainStep, type GraphNode } from '../lib/api';
import { useAsync, useMarkOnce } from '../lib/hooks';
import { big, fmtDateTime, fmtDur, fmtNsExact, num } from '../lib/ns';
import { KERNEL_KINDS, KIND_LABEL, nodeEventsQuery, nodeTitle, nodeWho, stepTitle } from '../lib/nodes';
import { href, navigate } from '../lib/route';
import { Dur, Empty, ErrorBox, Loading, Time, symptomBadge } from '../lib/ui';
import { GraphView } from './Graph';
import { ResultTable } from './Query';
import { ReplayPanel } from './Replay';

export function Txn({ txnKey, params }: { txnKey: string; params: URLSearchParams }) {
  const depth = Number(params.get('depth') ?? 8);
  const direction = params.get('direction') === 'descendants' ? 'descendants' : 'ancestors';
  // ?node=<id> pins the exact symptom the incident list showed; the key alone resolves to the
  // latest symptom under it.
  const node = /^\d+$/.test(params.get('node') ?? '') ? params.get('node')! : null;
  // ?replay=1 opens the replay panel (a link to "replay this transaction")
  const replayOpen = params.get('replay') === '1';
  const toggleReplay = () =>
    navigate(href(`/txn/${encodeURIComponent(txnKey)}`, { node: node ?? undefined, depth: params.get('depth') ?? undefined, direction: params.get('direction') ?? undefined, replay: replayOpen ? undefined : 1 }), { replace: true });
  const apiKey = node ? `#${node}` : txnKey;
  const rc = useAsync((signal) => api.rootcause(apiKey, signal), [apiKey]);
  const gr = useAsync(
    (signal) => {
      performance.mark('kp-graph-fetch');
      return api.graph(apiKey, { depth, direction, max: 5000 }, signal);
    },
    [apiKey, depth, direction],
  );
  const [sel, setSel] = useState<GraphNode | null>(null);
  useMarkOnce('kp-txn-view', !!rc.data && !!gr.data);

  const chainIds = useMemo(() => {
    const s = new Set<string>();
    if (rc.data) {
      s.add(String(rc.data.symptom.id));
      rc.data.chain.forEach((c) => s.add(String(c.id)));
    }
    return s;
  }, [rc.data]);
  const rootCauseId = rc.data?.root_cause ? String(rc.data.root_cause.id) : null;

  if (rc.error && rc.error instanceof ApiError && rc.error.status === 404)
    return (
      <div className="page">
        <ErrorBox error={rc.error}>
          {' '}
          <a href={href('/', { q: txnKey })}>Search the incidents for “{txnKey}”</a>
        </ErrorBox>
      </div>
    );

  const selectStep = (s: ChainStep) => {
    const n = gr.data?.nodes.find((x) => String(x.id) === String(s.id));
    if (n) setSel(n);
  };
  const sym = rc.data?.symptom;
  // The transaction's window with a margin; its time range marked, and the threads of the chain
  // (victim and culprits) pinned on top.
  const timelineHref = sym
    ? href('/timeline', {
        from: (big(sym.start_ns) - pad(sym)).toString(),
        to: (big(sym.end_ns) + pad(sym)).toString(),
        lane: 'thread',
        mark: `${big(sym.start_ns)}-${big(sym.end_ns)}`,
        pin: [...new Set([sym, ...(rc.data?.chain ?? [])].map((s) => s.pid).filter(Boolean))].join(','),
      })
    : undefined;

  return (
    <div className="page txn">
      <div className="page-head">
        <h1>
          <span className="mono" data-testid="txn-key">{txnKey}</span>
        </h1>
        {sym && (
          <>
            <span className={`badge ${symptomBadge(sym.text).cls}`}>{symptomBadge(sym.text).label}</span>
            <span className="sub">
              {sym.text} · {nodeWho(sym)} · <Dur ns={sym.latency_ns} /> · <Time ns={sym.start_ns} date digits={6} />
            </span>
            <span className="spacer" />
            {timelineHref && (
              <a className="btn" href={timelineHref} data-testid="open-timeline">
                Timeline of this transaction →
              </a>
            )}
            <button className={replayOpen ? 'on' : ''} onClick={toggleReplay} data-testid="open-replay">
              {replayOpen ? 'Close replay' : 'Replay…'}
            </button>
          </>
        )}
      </div>
      {rc.error && <ErrorBox error={rc.error} />}
      <div className={`txn-grid ${sel ? 'with-panel' : ''}`}>
        <section className="chain-col">
          <h2>Root cause chain</h2>
          {!rc.data && rc.loading && <Loading what="root cause" />}
          {rc.data && <Chain rc={rc.data} selected={sel ? String(sel.id) : null} onSelect={selectStep} />}
        </section>
        <section className="graph-col">
          <h2>
            Causal graph
            <span className="sub">
              {' '}
              {direction} of the symptom, {depth} hops ·{' '}
              <a href={href(`/txn/${encodeURIComponent(txnKey)}`, { node: node ?? undefined, depth: Math.min(64, depth + 4), direction })}>deeper</a>
              {' · '}
              <a href={href(`/txn/${encodeURIComponent(txnKey)}`, { node: node ?? undefined, depth, direction: direction === 'ancestors' ? 'descendants' : 'ancestors' })}>
                {direction === 'ancestors' ? 'show effects' : 'show causes'}
              </a>
            </span>
          </h2>
          {gr.error && <ErrorBox error={gr.error} />}
          {!gr.data && gr.loading && <Loading what="graph" />}
          {gr.data && gr.data.nodes.length === 0 && <Empty>The graph has no nodes for this key.</Empty>}
          {gr.data && gr.data.nodes.length > 0 && !rc.loading && (
            <GraphView
              graph={gr.data}
              chainIds={chainIds}
              rootCauseId={rootCauseId}
              selected={sel ? String(sel.id) : null}
              onSelect={setSel}
              onRendered={(ms) => {
                performance.mark('kp-graph-rendered');
                (window as unknown as { __kpGraphMs?: number }).__kpGraphMs = ms;
              }}
            />
          )}
        </section>
        {sel && (
          <section className="panel-col">
            <NodePanel node={sel} onClose={() => setSel(null)} />
          </section>
        )}
      </div>
      {replayOpen && <ReplayPanel txnKey={apiKey} />}
    </div>
  );
}

function pad(s: ChainStep): bigint {
  const d = big(s.end_ns) - big(s.start_ns);
  const p = d / 10n;
  return p < 1_000_000n ? 1_000_000n : p;
}

/** The chain, symptom first, root cause last; each step says which edge led to it and how much
 * of the symptom's time it explains. */
function Chain({ rc, selected, onSelect }: { rc: NonNullable<ReturnType<typeof api.rootcause> extends Promise<infer R> ? R : never>; selected: string | null; onSelect: (s: ChainStep) => void }) {
  const steps = [rc.symptom, ...rc.chain];
  const total = num(rc.symptom.latency_ns) || 1;
  return (
    <ol className="chain" data-testid="chain">
      {steps.map((s, i) => {
        const id = String(s.id);
        const isRoot = rc.root_cause && id === String(rc.root_cause.id);
        const share = i === 0 ? 1 : s.share ?? num(s.latency_ns) / total;
        return (
          <li
            key={id + ':' + i}
            className={`step k-${s.kind}${isRoot ? ' root-cause' : ''}${selected === id ? ' selected' : ''}${KERNEL_KINDS.has(s.kind) ? ' kernel' : ''}`}
            data-kind={s.kind}
            onClick={() => onSelect(s)}
          >
            {i > 0 && (
              <div className="edge">
                <span className="edge-kind">{s.edge}</span>
                <Dur ns={s.latency_ns} />
                <span className="share">
                  <span className="share-bar" style={{ width: `${Math.round(Math.min(1, share) * 100)}%` }} />
                </span>
                <span className="muted">{Math.round(share * 100)}%</span>
              </div>
            )}
            <div className="step-card">
              <div className="step-top">
                <span className={`kind k-${s.kind}`}>{KERNEL_KINDS.has(s.kind) ? 'KERNEL' : KIND_LABEL[s.kind] ?? s.kind}</span>
                {isRoot && <span className="rc-badge">root cause</span>}
              </div>
              <div className="step-title">{stepTitle(s)}</div>
              <div className="step-who">
                {nodeWho(s)} · <Time ns={s.start_ns} digits={6} /> · <Dur ns={big(s.end_ns) - big(s.start_ns)} />
              </div>
            </div>
          </li>
        );
      })}
      <li className="stop muted">stopped: {rc.stop === 'leaf' ? 'no further cause (a leaf)' : rc.stop}</li>
    </ol>
  );
}

function NodePanel({ node, onClose }: { node: GraphNode; onClose: () => void }) {
  const q = nodeEventsQuery(node);
  const ev = useAsync((signal) => (q ? api.query(q, signal) : Promise.resolve(null)), [q]);
  const start = big(node.start_ns);
  const end = big(node.end_ns);
  const fields: [string, React.ReactNode][] = [
    ['kind', KIND_LABEL[node.kind] ?? node.kind],
    ['node id', String(node.id)],
    ['service', node.service || '—'],
    ['pid / tid', `${node.pid} / ${node.tid}`],
    ['host', String(node.host)],
    ['start', <span className="mono" data-ns={start.toString()}>{fmtDateTime(start)}</span>],
    ['end', <span className="mono" data-ns={end.toString()}>{fmtDateTime(end)}</span>],
    ['duration', `${fmtDur(end - start)} (${fmtNsExact(end - start)})`],
    ['weight', `${fmtDur(big(node.weight_ns))} (${fmtNsExact(big(node.weight_ns))})`],
    ['depth', String(node.depth)],
  ];
  for (const [k, v] of Object.entries(node.labels ?? {})) fields.push([k, v]);
  const tl = href('/timeline', {
    from: (start - (end - start) / 2n - 1000n).toString(),
    to: (end + (end - start) / 2n + 1000n).toString(),
    lane: 'thread',
    pid: node.kind === 'process' ? node.pid : undefined,
    tid: node.kind !== 'process' && node.tid ? node.tid : undefined,
  });
  return (
    <div className="node-panel" data-testid="node-panel">
      <div className="panel-head">
        <h2>{nodeTitle(node)}</h2>
        <button className="icon-btn" onClick={onClose} title="close">
          ✕
        </button>
      </div>
      <table className="fields">
        <tbody>
          {fields.map(([k, v]) => (
            <tr key={k}>
              <th>{k}</th>
              <td>{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="row">
        <a className="btn" href={tl}>
          Timeline
        </a>
        {q && (
          <a className="btn" href={href('/query', { q })}>
            Open query
          </a>
        )}
      </div>
      <h3>Kernel events</h3>
      {!q && <Empty>This node is not tied to a thread.</Empty>}
      {ev.loading && q && <Loading what="events" />}
      {ev.error && <ErrorBox error={ev.error} />}
      {ev.data && (ev.data.rows?.length ?? 0) > 0 && <ResultTable result={ev.data} compact />}
      {ev.data && (ev.data.rows?.length ?? 0) === 0 && (
        <Empty>No events of this thread in the store for this time (events below the probe's thresholds are not recorded).</Empty>
      )}
    </div>
  );
}

// Replay.tsx - the transaction's replay panel: pick a process the agent captured for this
// transaction (or one along its root-cause chain), change its command line (the fix: a longer
// timeout), add injections (delay a call, fail a call, scale time), run it on the appliance
// (POST /api/v1/replay) and see the outcome against the recorded one, the first divergence, and
// stdout next to the recorded stdout. Runs of this page stay listed to compare.
import { useEffect, useRef, useState } from 'react';
import { ApiError, api, type ReplayProcess, type ReplayRequest, type ReplayResult } from '../lib/api';
import { useAsync } from '../lib/hooks';
import { big, fmtDur } from '../lib/ns';
import { Empty, ErrorBox, Loading, Time } from '../lib/ui';

interface Injection {
  kind: 'delay' | 'fail';
  spec: string;
}

interface Run {
  n: number;
  pid: number;
  comm: string;
  command: string[];
  injections: Injection[];
  timeScale: number;
  result: ReplayResult | null;
  error: Error | null;
}

/** One argument per line; a trailing empty line is not an argument. */
export function parseArgv(text: string): string[] {
  const lines = text.split('\n');
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

export function ReplayPanel({ txnKey }: { txnKey: string }) {
  const procs = useAsync((signal) => api.replayProcesses(txnKey, signal), [txnKey]);
  const [pick, setPick] = useState<number | null>(null);
  const [argv, setArgv] = useState('');
  const [inj, setInj] = useState<Injection[]>([]);
  const [timeScale, setTimeScale] = useState('1');
  const [timeoutMs, setTimeoutMs] = useState('');
  const [runs, setRuns] = useState<Run[]>([]);
  const [shown, setShown] = useState<number | null>(null);
  const [running, setRunning] = useState<{ started: number; ac: AbortController } | null>(null);
  const [, tick] = useState(0);
  const ref = useRef<HTMLElement>(null);

  useEffect(() => ref.current?.scrollIntoView({ block: 'start', behavior: 'smooth' }), []);
  // the first captured process is the default choice, with its recorded command line
  useEffect(() => {
    if (!procs.data || pick !== null) return;
    const i = procs.data.processes.findIndex((p) => p.captured);
    if (i >= 0) choose(i);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [procs.data]);
  // elapsed seconds while a replay runs (it can take as long as replay.api.timeoutMs)
  useEffect(() => {
    if (!running) return;
    const t = setInterval(() => tick((x) => x + 1), 250);
    return () => clearInterval(t);
  }, [running]);
  useEffect(() => () => running?.ac.abort(), [running]);

  const choose = (i: number) => {
    setPick(i);
    const p = procs.data?.processes[i];
    setArgv((p?.command ?? []).join('\n'));
  };
  const sel: ReplayProcess | null = pick !== null ? procs.data?.processes[pick] ?? null : null;
  const recorded = sel?.command ?? [];
  const args = parseArgv(argv);
  const argsChanged = args.length > 0 && (args.length !== recorded.length || args.some((a, i) => a !== recorded[i]));
  const ts = Number(timeScale);
  const tsBad = !(ts > 0) || !Number.isFinite(ts);
  const toBad = timeoutMs !== '' && !(Number(timeoutMs) > 0);
  const argvBad = args.length > 0 && !args[0].startsWith('/');
  const canRun = !!sel?.captured && !running && !tsBad && !toBad && !argvBad;

  const run = async () => {
    if (!sel || !canRun) return;
    const body: ReplayRequest = {
      pid: sel.pid,
      from: String(big(sel.from_ns)),
      to: String(big(sel.to_ns)),
      node: sel.node !== undefined ? String(sel.node) : undefined,
    };
    if (args.length && argsChanged) body.command = args;
    const delays = inj.filter((i) => i.kind === 'delay' && i.spec.trim()).map((i) => i.spec.trim());
    const fails = inj.filter((i) => i.kind === 'fail' && i.spec.trim()).map((i) => i.spec.trim());
    if (delays.length) body.delays = delays;
    if (fails.length) body.fails = fails;
    if (ts !== 1) body.time_scale = ts;
    if (timeoutMs) body.timeout_ms = Number(timeoutMs);
    const n = runs.length + 1;
    const entry: Run = {
      n,
      pid: sel.pid,
      comm: sel.comm,
      command: body.command ?? recorded,
      injections: inj.filter((i) => i.spec.trim()),
      timeScale: ts,
      result: null,
      error: null,
    };
    const ac = new AbortController();
    setRunning({ started: performance.now(), ac });
    try {
      entry.result = await api.replayRun(body, ac.signal);
    } catch (e) {
      if ((e as Error).name === 'AbortError') return;
      entry.error = e as Error;
    } finally {
      setRunning(null);
    }
    setRuns((r) => [entry, ...r]);
    setShown(n);
  };

  const current = runs.find((r) => r.n === shown) ?? null;

  return (
    <section className="replay-panel" ref={ref} data-testid="replay-panel">
      <h2>
        Replay <span className="sub">a recorded process of this transaction, on the appliance, under ptrace in virtual time</span>
      </h2>
      {procs.loading && !procs.data && <Loading what="recorded processes" />}
      {procs.error && (
        <ErrorBox error={procs.error}>
          {procs.error instanceof ApiError && procs.error.status === 503 ? ' Replay needs the capture store.' : null}
        </ErrorBox>
      )}
      {procs.data && procs.data.processes.length === 0 && <Empty>{procs.data.hint ?? 'No process is tied to this transaction.'}</Empty>}
      {procs.data && procs.data.processes.length > 0 && (
        <div className="replay-grid">
          <div className="replay-setup">
            <h3>1. Process</h3>
            <table className="grid replay-procs" data-testid="replay-processes">
              <thead>
                <tr>
                  <th />
                  <th>pid</th>
                  <th>process</th>
                  <th>role</th>
                  <th>recording</th>
                </tr>
              </thead>
              <tbody>
                {procs.data.processes.map((p, i) => (
                  <tr
                    key={`${p.host}:${p.pid}`}
                    className={`${p.captured ? '' : 'muted'}${pick === i ? ' selected' : ''}`}
                    onClick={() => p.captured && choose(i)}
                    data-captured={p.captured ? 'yes' : 'no'}
                  >
                    <td>
                      <input type="radio" name="replay-proc" checked={pick === i} disabled={!p.captured} onChange={() => choose(i)} aria-label={`replay pid ${p.pid}`} />
                    </td>
                    <td className="mono">{p.pid}</td>
                    <td>
                      {p.comm || '?'}
                      {p.service && <span className="muted"> · {p.service}</span>}
                    </td>
                    <td className="muted">{p.role === 'transaction' ? 'transaction' : 'on the chain'}</td>
                    <td>
                      {p.captured ? (
                        <>
                          {p.records} records · <Time ns={p.from_ns} /> for {fmtDur(big(p.to_ns) - big(p.from_ns))}
                          {!p.exec_seen && <span className="warn-text"> · started before the capture</span>}
                        </>
                      ) : (
                        <span className="muted">not captured</span>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            {procs.data.hint && <div className="hint">{procs.data.hint}</div>}

            <h3>2. Command</h3>
            <label className="hint" htmlFor="replay-argv">
              One argument per line; the first is the program (an absolute path on the appliance host). Change an argument — a timeout,
              a flag — or point at a fixed build to verify a fix.
            </label>
            <textarea
              id="replay-argv"
              className="replay-argv mono"
              data-testid="replay-argv"
              rows={Math.max(3, Math.min(10, args.length + 1))}
              value={argv}
              placeholder={sel?.captured ? 'the recorded command' : 'pick a captured process'}
              spellCheck={false}
              onChange={(e) => setArgv(e.target.value)}
              disabled={!sel?.captured}
            />
            <div className="row small">
              {argsChanged ? <span className="warn-text">changed from the recorded command</span> : <span className="muted">as recorded</span>}
              {argsChanged && (
                <button className="link-btn" onClick={() => setArgv(recorded.join('\n'))}>
                  reset
                </button>
              )}
              {argvBad && <span className="warn-text">the program must be an absolute path</span>}
            </div>

            <h3>3. Injections</h3>
            {inj.map((x, i) => (
              <div className="row inj-row" key={i}>
                <select value={x.kind} onChange={(e) => setInj(inj.map((y, j) => (j === i ? { ...y, kind: e.target.value as Injection['kind'] } : y)))} aria-label="injection kind">
                  <option value="delay">delay</option>
                  <option value="fail">fail</option>
                </select>
                <input
                  className="mono"
                  data-testid="replay-inj"
                  value={x.spec}
                  placeholder={x.kind === 'delay' ? 'CALL[:fd=N][:nth=K]:+DURATION  e.g. recvfrom:+500ms' : 'CALL[:nth=K]:ERRNO  e.g. fsync:EIO'}
                  onChange={(e) => setInj(inj.map((y, j) => (j === i ? { ...y, spec: e.target.value } : y)))}
                />
                <button className="icon-btn" title="remove" onClick={() => setInj(inj.filter((_, j) => j !== i))}>
                  ✕
                </button>
              </div>
            ))}
            <div className="row">
              <button onClick={() => setInj([...inj, { kind: 'delay', spec: '' }])}>+ delay a call</button>
              <button onClick={() => setInj([...inj, { kind: 'fail', spec: '' }])}>+ fail a call</button>
              <label className="small">
                time scale{' '}
                <input className="num-input" value={timeScale} onChange={(e) => setTimeScale(e.target.value)} title="2 = the recorded world runs twice as slow" />
              </label>
              <label className="small">
                timeout ms{' '}
                <input className="num-input" value={timeoutMs} placeholder="default" onChange={(e) => setTimeoutMs(e.target.value)} />
              </label>
            </div>
            <div className="row">
              <button className="primary" data-testid="replay-run" disabled={!canRun} onClick={run}>
                {running ? `Replaying… ${((performance.now() - running.started) / 1000).toFixed(1)} s` : 'Run replay'}
              </button>
              {running && <button onClick={() => running.ac.abort()}>cancel</button>}
            </div>
          </div>
          <div className="replay-out">
            {!current && !running && <Empty>Pick a process, change what you want to try, and run it. The outcome is compared with the recorded one.</Empty>}
            {current && <RunView run={current} />}
            {runs.length > 1 && (
              <>
                <h3>Runs</h3>
                <ol className="replay-runs" data-testid="replay-runs">
                  {runs.map((r) => (
                    <li key={r.n} className={r.n === shown ? 'selected' : ''} onClick={() => setShown(r.n)}>
                      <span className="mono">#{r.n}</span> pid {r.pid} · {runSummary(r)}
                      <span className="muted small"> {describeChange(r)}</span>
                    </li>
                  ))}
                </ol>
              </>
            )}
          </div>
        </div>
      )}
    </section>
  );
}

function runSummary(r: Run): string {
  if (r.error) return `error: ${r.error.message.slice(0, 80)}`;
  const x = r.result!;
  if (x.state === 'timed out') return 'timed out';
  if (x.state === 'diverged') return `diverged at ${x.divergence?.call ?? '?'}`;
  return x.outcome_change ?? x.outcome ?? x.state;
}

function describeChange(r: Run): string {
  const parts: string[] = [];
  if (r.injections.length) parts.push(r.injections.map((i) => `${i.kind === 'delay' ? '--delay' : '--fail'} ${i.spec}`).join(' '));
  if (r.timeScale !== 1) parts.push(`--time-scale ${r.timeScale}`);
  parts.push(r.command.slice(1).join(' '));
  return parts.filter(Boolean).join(' · ');
}

const STATE_CLASS: Record<string, string> = { done: 'ok', diverged: 'bad', failed: 'bad', 'timed out': 'warn' };

function RunView({ run }: { run: Run }) {
  if (run.error)
    return (
      <div className="replay-result" data-testid="replay-result" data-state="error">
        <ErrorBox error={run.error} />
      </div>
    );
  const r = run.result!;
  const fixed = r.changed && /succeeded$/.test(r.outcome ?? '');
  return (
    <div className="replay-result" data-testid="replay-result" data-state={r.state}>
      <div className="row">
        <span className={`badge ${STATE_CLASS[r.state] ?? 'warn'}`}>{r.state}</span>
        <span className="mono muted">{r.id}</span>
        {r.stats && (
          <span className="muted small">
            {r.stats.served} calls served, {r.stats.compared} compared · {r.stats.wall_ms.toFixed(0)} ms wall, {r.stats.virtual_ms.toFixed(0)} ms virtual
          </span>
        )}
      </div>
      {r.state === 'timed out' ? (
        <div className="outcome warn-text" data-testid="replay-outcome">{r.error}</div>
      ) : (
        <div className={`outcome ${fixed ? 'fixed' : r.changed ? 'changed' : ''}`} data-testid="replay-outcome">
          {r.outcome_change ?? r.outcome}
        </div>
      )}
      <table className="fields">
        <tbody>
          <tr>
            <th>command</th>
            <td className="mono">{(r.command ?? run.command).join(' ')}</td>
          </tr>
          {(run.injections.length > 0 || run.timeScale !== 1) && (
            <tr>
              <th>injections</th>
              <td className="mono">{describeChange({ ...run, command: [] })}</td>
            </tr>
          )}
          <tr>
            <th>exit</th>
            <td>
              {r.exit_status ?? (r.exit_signal ? `signal ${r.exit_signal}` : '—')} <span className="muted">(recorded: {r.recorded_exit_status ?? '—'})</span>
            </td>
          </tr>
          {r.reason && (
            <tr>
              <th>reason</th>
              <td>{r.reason}</td>
            </tr>
          )}
          {r.recording && (
            <tr>
              <th>recording</th>
              <td>
                pid {r.recording.pid}, {r.recording.calls} calls, {r.recording.threads} threads · <Time ns={r.recording.from_ns} date />
                {r.recording.note && <div className="warn-text small">{r.recording.note}</div>}
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {r.divergence && (
        <div className="divergence" data-testid="replay-divergence">
          <h3>First divergence</h3>
          <div>
            <b className="mono">{r.divergence.call}</b> on thread {r.divergence.thread} (recorded thread {r.divergence.recorded_thread}), its call #{r.divergence.ordinal}
          </div>
          <div className="muted">{r.divergence.what}</div>
          <table className="fields mono">
            <tbody>
              <tr>
                <th>expected</th>
                <td>{r.divergence.expected ?? r.divergence.recorded}</td>
              </tr>
              <tr>
                <th>actual</th>
                <td className="bad-text">{r.divergence.actual ?? '—'}</td>
              </tr>
            </tbody>
          </table>
        </div>
      )}
      {r.stdout !== undefined && (
        <div className="stdout-pair">
          <div>
            <h3>
              stdout{' '}
              {r.stdout_identical === true && <span className="badge ok">identical to the recording</span>}
              {r.stdout_identical === false && <span className="badge warn">differs from the recording</span>}
            </h3>
            <pre className="out" data-testid="replay-stdout">{r.stdout || '(empty)'}{r.stdout_truncated ? '\n… (cut)' : ''}</pre>
          </div>
          <div>
            <h3>recorded stdout</h3>
            <pre className="out">{r.recorded_stdout ?? '(not recorded)'}{r.recorded_stdout_truncated ? '\n… (cut)' : ''}</pre>
          </div>
        </div>
      )}
      {r.stderr && (
        <details>
          <summary>stderr</summary>
          <pre className="out">{r.stderr}</pre>
        </details>
      )}
      {r.notes && (
        <details>
          <summary>notes</summary>
          <pre className="out">{r.notes}</pre>
        </details>
      )}
      {r.report && (
        <details>
          <summary>report</summary>
          <pre className="out">{r.report}</pre>
        </details>
      )}
    </div>
  );
}

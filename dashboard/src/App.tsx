// App.tsx - the console's shell: top bar (views, search, time zone, access token), routing by
// URL hash, and the global keys ("/" focuses search).
import { Component, type ReactNode, Suspense, lazy, useEffect, useRef, useState } from 'react';
import { ApiError, api, getToken, onAuthError, setToken } from './lib/api';
import { setTimeZone, timeZone, type Zone } from './lib/ns';
import { href, navigate, txnHref, useRoute } from './lib/route';
import { Incidents } from './views/Incidents';
import { Live } from './views/Live';
import { Query } from './views/Query';
import { Txn } from './views/Txn';

// ECharts is only needed by the timeline: its own chunk, loaded on first use.
const TimelineView = lazy(() => import('./views/Timeline').then((m) => ({ default: m.TimelineView })));

export function App() {
  const route = useRoute();
  const [zone, setZone] = useState<Zone>(timeZone());
  const [authProblem, setAuthProblem] = useState(false);
  const [epoch, setEpoch] = useState(0); // a new token remounts the view: everything refetches
  const searchRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
      const t = e.target as HTMLElement | null;
      if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) return;
      e.preventDefault();
      searchRef.current?.focus();
      searchRef.current?.select();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);
  useEffect(() => {
    const off = onAuthError(() => setAuthProblem(true));
    return () => {
      off();
    };
  }, []);

  const changeZone = (z: Zone) => {
    setTimeZone(z);
    setZone(z);
  };

  let view: ReactNode;
  switch (route.view) {
    case 'incidents':
      view = <Incidents params={route.params} />;
      break;
    case 'txn':
      view = <Txn key={`${route.arg}:${route.params.get('node') ?? ''}`} txnKey={route.arg} params={route.params} />;
      break;
    case 'timeline':
      view = <TimelineView params={route.params} />;
      break;
    case 'live':
      view = <Live params={route.params} />;
      break;
    case 'query':
      view = <Query params={route.params} />;
      break;
    default:
      view = (
        <div className="page">
          <div className="error-box">No such page: {route.arg}. <a href="#/">Go to incidents</a></div>
        </div>
      );
  }

  return (
    <div className="app" data-zone={zone}>
      <header className="topbar">
        <a className="brand" href="#/" title="kprobe — incidents">
          <span className="brand-mark">◆</span> kprobe
        </a>
        <nav className="tabs">
          <a className={route.view === 'incidents' || route.view === 'txn' ? 'active' : ''} href="#/">Incidents</a>
          <a className={route.view === 'timeline' ? 'active' : ''} href="#/timeline">Timeline</a>
          <a className={route.view === 'live' ? 'active' : ''} href="#/live">Live</a>
          <a className={route.view === 'query' ? 'active' : ''} href="#/query">Query</a>
        </nav>
        <Search inputRef={searchRef} />
        <div className="topbar-right">
          <div className="seg" role="group" aria-label="time zone">
            <button className={zone === 'utc' ? 'on' : ''} onClick={() => changeZone('utc')}>UTC</button>
            <button className={zone === 'local' ? 'on' : ''} onClick={() => changeZone('local')}>Local</button>
          </div>
          <TokenBox
            forceOpen={authProblem}
            onSaved={() => {
              setAuthProblem(false);
              setEpoch((e) => e + 1);
            }}
          />
        </div>
      </header>
      {authProblem && (
        <div className="banner">kprobed refused the request: it needs an access token (api.auth.enabled). Set one with the key button.</div>
      )}
      <main>
        <ErrorBoundary key={`${route.view}:${route.arg}:${epoch}`}>
          <Suspense fallback={<div className="page loading">Loading…</div>}>{view}</Suspense>
        </ErrorBoundary>
      </main>
    </div>
  );
}

/**
 * The search box: Enter opens the transaction when the text names one the graph knows
 * (transaction id, trace id, span id, conn:<hex>, pid:<n>), otherwise lists the incidents whose
 * key, text, service or process name contains it.
 */
function Search({ inputRef }: { inputRef: React.RefObject<HTMLInputElement | null> }) {
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const go = async () => {
    const q = text.trim();
    if (!q) return navigate('#/');
    setBusy(true);
    try {
      await api.rootcause(q);
      navigate(txnHref(q));
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 404) console.warn('search:', (e as Error).message);
      navigate(href('/', { q }));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form
      className="search"
      onSubmit={(e) => {
        e.preventDefault();
        void go();
      }}
    >
      <input
        ref={inputRef}
        type="search"
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Escape') (e.target as HTMLInputElement).blur();
        }}
        placeholder="Transaction, trace id, service…"
        aria-label="search transactions"
        spellCheck={false}
      />
      <kbd className="search-kbd" title="press / to search">{busy ? '…' : '/'}</kbd>
    </form>
  );
}

function TokenBox({ forceOpen, onSaved }: { forceOpen: boolean; onSaved: () => void }) {
  const [open, setOpen] = useState(false);
  const [tok, setTok] = useState(getToken());
  const isOpen = open || forceOpen;
  return (
    <div className="token">
      <button className={`icon-btn ${getToken() ? 'on' : ''}`} title="access token (api.auth.tokens)" onClick={() => setOpen(!isOpen)}>
        <svg width="14" height="14" viewBox="0 0 16 16" aria-hidden="true">
          <circle cx="5" cy="8" r="3.2" fill="none" stroke="currentColor" strokeWidth="1.6" />
          <path d="M8 8h7M12.5 8v3M15 8v2" stroke="currentColor" strokeWidth="1.6" fill="none" />
        </svg>
        <span className="sr-only">access token</span>
      </button>
      {isOpen && (
        <form
          className="popover"
          onSubmit={(e) => {
            e.preventDefault();
            setToken(tok.trim());
            setOpen(false);
            onSaved();
          }}
        >
          <label>
            Access token
            <input type="password" autoComplete="off" value={tok} onChange={(e) => setTok(e.target.value)} placeholder="bearer token" autoFocus />
          </label>
          <div className="hint">Kept in this browser (localStorage), sent as a bearer token.</div>
          <div className="row">
            <button type="submit">Save</button>
            <button type="button" onClick={() => { setTok(''); setToken(''); setOpen(false); onSaved(); }}>Clear</button>
          </div>
        </form>
      )}
    </div>
  );
}

class ErrorBoundary extends Component<{ children: ReactNode }, { error: Error | null }> {
  state = { error: null as Error | null };
  static getDerivedStateFromError(error: Error) {
    return { error };
  }
  render() {
    if (this.state.error)
      return (
        <div className="page">
          <div className="error-box">
            This view failed: {this.state.error.message}. <a href="#/" onClick={() => this.setState({ error: null })}>Back to incidents</a>
          </div>
        </div>
      );
    return this.props.children;
  }
}

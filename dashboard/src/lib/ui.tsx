// ui.tsx - small presentational pieces shared by the views.
import type { ReactNode } from 'react';
import { big, fmtDateTime, fmtDur, fmtNsExact, fmtTime } from './ns';

/** An exact timestamp: short form shown, every digit in the title and in data-ns. */
export function Time({ ns, digits = 3, date = false }: { ns: unknown; digits?: number; date?: boolean }) {
  const b = big(ns);
  return (
    <time className="ts" data-ns={b.toString()} title={`${fmtDateTime(b)}  (${b} ns since the epoch)`}>
      {fmtTime(b, { digits, date })}
    </time>
  );
}

export function Dur({ ns }: { ns: unknown }) {
  return (
    <span className="dur" title={fmtNsExact(big(ns))}>
      {fmtDur(big(ns))}
    </span>
  );
}

export function ErrorBox({ error, children }: { error: Error | string; children?: ReactNode }) {
  return (
    <div className="error-box" role="alert">
      {typeof error === 'string' ? error : error.message}
      {children}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return <div className="loading">Loading {what}…</div>;
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

/** Colour of a node or event kind (CSS variables in styles.css). */
export function kindClass(kind: string): string {
  return `k-${kind.replace(/[^a-z_-]/gi, '')}`;
}

/** Failed / timeout / slow, from a symptom's words. */
export function symptomBadge(text: string): { cls: string; label: string } {
  if (/timeout|timed out|abandoned/i.test(text)) return { cls: 'bad', label: 'timeout' };
  if (/error|fail|refused|reset|5\d\d/i.test(text)) return { cls: 'bad', label: 'failed' };
  return { cls: 'warn', label: 'slow' };
}

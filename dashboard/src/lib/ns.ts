// ns.ts - nanosecond time: exact epoch-ns values as BigInt, formatted without ever passing
// through a double ("10:42:17.123456789"), durations in human units, and parsing of the time
// inputs people type (durations ago, wall-clock times, raw epoch ns).

export const NS_PER_US = 1000n;
export const NS_PER_MS = 1_000_000n;
export const NS_PER_S = 1_000_000_000n;

export type Zone = 'local' | 'utc';

let zone: Zone = (typeof localStorage !== 'undefined' && (localStorage.getItem('kprobe.tz') as Zone)) || 'utc';
export function timeZone(): Zone {
  return zone;
}
export function setTimeZone(z: Zone) {
  zone = z;
  try {
    localStorage.setItem('kprobe.tz', z);
  } catch {
    /* private mode: keep it for this page only */
  }
}

/** Any numeric-ish value (BigInt, number, decimal string) as BigInt; 0n when it is none. */
export function big(x: unknown): bigint {
  if (typeof x === 'bigint') return x;
  if (typeof x === 'number' && Number.isFinite(x)) return BigInt(Math.trunc(x));
  if (typeof x === 'string' && /^-?\d+$/.test(x)) return BigInt(x);
  return 0n;
}

/** As a JS number (for durations and counts, which stay far below 2^53). */
export function num(x: unknown): number {
  if (typeof x === 'number') return x;
  if (typeof x === 'bigint') return Number(x);
  if (typeof x === 'string' && x.trim() !== '') return Number(x);
  return 0;
}

const pad = (v: number, w = 2) => String(v).padStart(w, '0');

function parts(ns: bigint, z: Zone) {
  const neg = ns < 0n;
  let s = ns / NS_PER_S;
  let frac = ns % NS_PER_S;
  if (neg && frac !== 0n) {
    s -= 1n;
    frac += NS_PER_S;
  }
  const d = new Date(Number(s) * 1000);
  const utc = z === 'utc';
  return {
    y: utc ? d.getUTCFullYear() : d.getFullYear(),
    mo: (utc ? d.getUTCMonth() : d.getMonth()) + 1,
    d: utc ? d.getUTCDate() : d.getDate(),
    h: utc ? d.getUTCHours() : d.getHours(),
    mi: utc ? d.getUTCMinutes() : d.getMinutes(),
    s: utc ? d.getUTCSeconds() : d.getSeconds(),
    frac: frac.toString().padStart(9, '0'),
  };
}

/**
 * Wall-clock time of an epoch-ns value. digits = fraction digits (0..9, default 9: exact).
 * "10:42:17.123456789"; with date: "2026-11-22 10:42:17.123456789".
 */
export function fmtTime(ns: bigint | number, opts: { digits?: number; date?: boolean; zone?: Zone } = {}): string {
  const p = parts(big(ns), opts.zone ?? zone);
  const digits = opts.digits ?? 9;
  const t = `${pad(p.h)}:${pad(p.mi)}:${pad(p.s)}${digits > 0 ? '.' + p.frac.slice(0, digits) : ''}`;
  return opts.date ? `${p.y}-${pad(p.mo)}-${pad(p.d)} ${t}` : t;
}

/** Date and time, exact: "2026-11-22 10:42:17.123456789" (+ " UTC" in UTC mode). */
export function fmtDateTime(ns: bigint | number, digits = 9): string {
  return fmtTime(ns, { date: true, digits }) + (zone === 'utc' ? ' UTC' : '');
}

/** Fraction digits that make ticks `stepNs` apart distinguishable (0, 3, 6 or 9). */
export function digitsForStep(stepNs: number): number {
  if (stepNs >= 1e9) return 0;
  if (stepNs >= 1e6) return 3;
  if (stepNs >= 1e3) return 6;
  return 9;
}

/** A duration in the unit that reads best: "812 ns", "3.40 µs", "612.3 ms", "1.204 s", "2m 05s". */
export function fmtDur(x: bigint | number): string {
  const v = num(x);
  const a = Math.abs(v);
  const sign = v < 0 ? '-' : '';
  if (a < 1e3) return `${sign}${Math.round(a)} ns`;
  if (a < 1e6) return `${sign}${trim(a / 1e3)} µs`;
  if (a < 1e9) return `${sign}${trim(a / 1e6)} ms`;
  if (a < 60e9) return `${sign}${trim(a / 1e9)} s`;
  const s = Math.round(a / 1e9);
  if (s < 3600) return `${sign}${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  return `${sign}${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
}

function trim(v: number): string {
  // 3 significant digits at least, one decimal at most for values >= 100
  if (v >= 100) return v.toFixed(1).replace(/\.0$/, '');
  if (v >= 10) return v.toFixed(2).replace(/0$/, '').replace(/\.$/, '');
  return v.toFixed(3).replace(/0+$/, '').replace(/\.$/, '');
}

/** Exact duration with thousands separators: "612 345 678 ns". */
export function fmtNsExact(x: bigint | number): string {
  return big(x).toString().replace(/\B(?=(\d{3})+(?!\d))/g, '\u202f') + ' ns';
}

const UNIT: Record<string, bigint> = {
  ns: 1n,
  us: 1000n,
  µs: 1000n,
  ms: NS_PER_MS,
  s: NS_PER_S,
  m: 60n * NS_PER_S,
  h: 3600n * NS_PER_S,
  d: 86400n * NS_PER_S,
};

/** "250ms", "1.5s", "15m", "2h", "7d" as ns; null when it is not a duration. */
export function parseDuration(s: string): bigint | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h|d)\s*$/.exec(s);
  if (!m) return null;
  const [int, frac = ''] = m[1].split('.');
  const unit = UNIT[m[2]];
  const scale = 10n ** BigInt(frac.length);
  return (BigInt(int + frac) * unit) / scale;
}

/**
 * A time a person typed, as epoch ns:
 *   "1763805737123456789"           epoch ns
 *   "15m" / "2h"                    that long before `now`
 *   "2026-11-22 10:42:17.123456789" wall clock in the current zone (date optional: today)
 *   "10:42:17.123"
 * null when it cannot be read.
 */
export function parseTime(s: string, now: bigint = BigInt(Date.now()) * NS_PER_MS, z: Zone = zone): bigint | null {
  const t = s.trim();
  if (!t) return null;
  if (/^\d{10,}$/.test(t)) return BigInt(t);
  const d = parseDuration(t);
  if (d !== null) return now - d;
  const m = /^(?:(\d{4})-(\d{2})-(\d{2})[ T])?(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?\s*(Z|UTC)?$/i.exec(t);
  if (!m) return null;
  const useUtc = z === 'utc' || !!m[8];
  const today = new Date(Number(now / NS_PER_MS));
  const y = m[1] ? +m[1] : useUtc ? today.getUTCFullYear() : today.getFullYear();
  const mo = m[2] ? +m[2] - 1 : useUtc ? today.getUTCMonth() : today.getMonth();
  const dd = m[3] ? +m[3] : useUtc ? today.getUTCDate() : today.getDate();
  const ms = useUtc
    ? Date.UTC(y, mo, dd, +m[4], +m[5], m[6] ? +m[6] : 0)
    : new Date(y, mo, dd, +m[4], +m[5], m[6] ? +m[6] : 0).getTime();
  if (!Number.isFinite(ms)) return null;
  const frac = BigInt((m[7] ?? '').padEnd(9, '0'));
  return BigInt(ms) * NS_PER_MS + frac;
}

/** Epoch ns of now. */
export function nowNs(): bigint {
  return BigInt(Date.now()) * NS_PER_MS;
}

import { describe, expect, it } from 'vitest';
import { big, digitsForStep, fmtDur, fmtNsExact, fmtTime, parseDuration, parseTime } from '../ns';

describe('ns', () => {
  const T = 1795342327984635321n; // 2026-11-22 10:12:07.984635321 UTC
  it('formats exact nanoseconds without rounding', () => {
    expect(fmtTime(T, { zone: 'utc' })).toBe('10:12:07.984635321');
    expect(fmtTime(T, { zone: 'utc', date: true })).toBe('2026-11-22 10:12:07.984635321');
    expect(fmtTime(T, { zone: 'utc', digits: 3 })).toBe('10:12:07.984');
    expect(fmtTime(T + 1n, { zone: 'utc' })).toBe('10:12:07.984635322');
    expect(fmtTime(1795342327000000000n, { zone: 'utc' })).toBe('10:12:07.000000000');
  });
  it('durations read well', () => {
    expect(fmtDur(812)).toBe('812 ns');
    expect(fmtDur(3400)).toBe('3.4 µs');
    expect(fmtDur(612_345_678)).toBe('612.3 ms');
    expect(fmtDur(1_204_000_000n)).toBe('1.204 s');
    expect(fmtDur(125_000_000_000)).toBe('2m 05s');
    expect(fmtNsExact(612345678n)).toBe('612\u202f345\u202f678 ns');
  });
  it('parses durations and times', () => {
    expect(parseDuration('15m')).toBe(900_000_000_000n);
    expect(parseDuration('1.5s')).toBe(1_500_000_000n);
    expect(parseDuration('250us')).toBe(250_000n);
    expect(parseDuration('x')).toBeNull();
    const now = T;
    expect(parseTime('1795342327984635321', now)).toBe(T);
    expect(parseTime('1h', now)).toBe(T - 3_600_000_000_000n);
    expect(parseTime('2026-11-22 10:12:07.984635321', now, 'utc')).toBe(T);
    expect(parseTime('10:12:07.984635321', now, 'utc')).toBe(T);
    expect(parseTime('nonsense', now)).toBeNull();
  });
  it('big/digits helpers', () => {
    expect(big('123')).toBe(123n);
    expect(big(5)).toBe(5n);
    expect(big(undefined)).toBe(0n);
    expect(digitsForStep(2e9)).toBe(0);
    expect(digitsForStep(5e6)).toBe(3);
    expect(digitsForStep(5e3)).toBe(6);
    expect(digitsForStep(50)).toBe(9);
  });
});

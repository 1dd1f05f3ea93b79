import { describe, expect, it } from 'vitest';
import { parseJson, parseJsonPortable, stringifyJson } from '../json';

const DOC =
  '{"time_ns":1795342327984635321,"small":42,"neg":-9007199254740993,"f":0.25,"e":1e3,' +
  '"s":"a\\"b\\u00e9\\n","arr":[1,18446744073709551615,null,true,false],"o":{}}';

describe('json', () => {
  it('keeps epoch-ns integers exact as BigInt', () => {
    const v = parseJson(DOC) as Record<string, unknown>;
    expect(v.time_ns).toBe(1795342327984635321n);
    expect(v.small).toBe(42);
    expect(v.neg).toBe(-9007199254740993n);
    expect(v.f).toBe(0.25);
    expect(v.e).toBe(1000);
    expect((v.arr as unknown[])[1]).toBe(18446744073709551615n);
  });
  it('the portable parser agrees with the native path', () => {
    expect(parseJsonPortable(DOC)).toEqual(parseJson(DOC));
    for (const t of ['[]', '{}', '"x"', '0', '-0.5e-3', '[[[1]]]', ' {"a" : [ 1 , 2 ] } ', '9007199254740991', '9007199254740992'])
      expect(parseJsonPortable(t)).toEqual(parseJson(t));
  });
  it('2^53 boundary: safe integers stay numbers', () => {
    expect(parseJsonPortable('9007199254740991')).toBe(9007199254740991);
    expect(parseJsonPortable('9007199254740992')).toBe(9007199254740992n);
  });
  it('rejects malformed text with a position', () => {
    for (const t of ['{', '[1,]', '{"a"}', '"abc', 'tru', '1 2', '{"a":1,}', '"\\x"', '01'])
      expect(() => parseJsonPortable(t), t).toThrow(SyntaxError);
  });
  it('stringify writes BigInt as plain numbers', () => {
    expect(stringifyJson({ a: 1795342327984635321n, b: [1n, 'x'] })).toBe('{"a":1795342327984635321,"b":[1,"x"]}');
  });
});

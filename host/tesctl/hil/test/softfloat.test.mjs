import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bigToFloat, bitsToDouble, bitsToFloat, DOUBLE_FUNCS, FLOAT_FUNCS, floatToBits } from '../lib/softfloat.mjs';

const F = Object.fromEntries(FLOAT_FUNCS.map(([n, , fn]) => [n, fn]));
const D = Object.fromEntries(DOUBLE_FUNCS.map(([n, , fn]) => [n, fn]));
const f = floatToBits;

test('table order is the pico-sdk sf_table.h layout', () => {
  const names = FLOAT_FUNCS.map(([n]) => n);
  assert.equal(names.length, 32);
  assert.equal(names.indexOf('fsqrt'), 0x18 / 4);
  assert.equal(names.indexOf('float2int'), 0x1c / 4);
  assert.equal(names.indexOf('fcos'), 0x3c / 4);
  assert.equal(names.indexOf('fsincos'), 0x48 / 4);
  assert.equal(names.indexOf('fln'), 0x50 / 4);
  assert.equal(names.indexOf('fatan2'), 0x58 / 4);
  assert.equal(names.indexOf('float2double'), 0x7c / 4);
  assert.equal(DOUBLE_FUNCS.map(([n]) => n).indexOf('double2float'), 0x7c / 4);
  assert.equal(DOUBLE_FUNCS.map(([n]) => n).indexOf('dsincos'), 0x48 / 4);
});

test('single arithmetic is correctly rounded (a tie rounds to even)', () => {
  // 1 + 2^-24 is exactly halfway between 1 and the next float: ties to even gives 1.
  assert.equal(bitsToFloat(F.fadd(f(1), f(2 ** -24)).r0), 1);
  // 1 + 3*2^-24 is halfway between 1+2^-23 (odd) and 1+2^-22 (even): rounds up.
  assert.equal(bitsToFloat(F.fadd(f(1 + 2 ** -23), f(2 ** -24)).r0), 1 + 2 ** -22);
  assert.equal(bitsToFloat(F.fmul(f(3), f(Math.fround(0.1))).r0), Math.fround(3 * Math.fround(0.1)));
});

test('denormals are flushed to zero on input and output', () => {
  const tiny = 0x00000001; // the smallest denormal
  assert.equal(F.fadd(tiny, f(0)).r0, 0);
  assert.equal(F.fmul(f(2 ** -100), f(2 ** -30)).r0, 0, 'an underflowing product is +0');
  assert.equal(F.fmul(f(-(2 ** -100)), f(2 ** -30)).r0, 0x80000000, 'with its sign');
  assert.deepEqual(D.dmul(0, 0x00000001, 0, 0x3ff00000), { r0: 0, r1: 0 });
});

test('float -> int conversions floor and clamp; NaN acts like +infinity', () => {
  assert.equal(F.float2int(f(-0.5)).r0 | 0, -1);
  assert.equal(F.float2int(f(2.999)).r0, 2);
  assert.equal(F.float2int(f(-3e9)).r0 | 0, -2147483648);
  assert.equal(F.float2uint(f(4.7e9)).r0, 0xffffffff);
  assert.equal(F.float2int(0x7fc00000).r0, 0x7fffffff);
  assert.deepEqual(F.float2int64(f(-1.5)), { r0: 0xfffffffe, r1: 0xffffffff });
  assert.deepEqual(F.float2ufix64(f(1.5), 32), { r0: 0x80000000, r1: 1 });
  assert.deepEqual(D.double2int64(0, 0xc3e00000), { r0: 0, r1: 0x80000000 }, '-2^63 stays in range');
});

test('64-bit integers round to float once (no double rounding through 53 bits)', () => {
  // 2^60 + 2^36 + 1: a double would round it to 2^60 + 2^36, a tie for float that goes to
  // even (2^60); the exact value is above the tie, so the float is 2^60 + 2^37.
  const v = (1n << 60n) + (1n << 36n) + 1n;
  assert.equal(bigToFloat(v), 2 ** 60 + 2 ** 37);
  assert.notEqual(Math.fround(Number(v)), 2 ** 60 + 2 ** 37, 'the naive way double-rounds');
  const lo = Number(v & 0xffffffffn);
  const hi = Number(v >> 32n);
  assert.equal(bitsToFloat(F.int642float(lo, hi).r0), 2 ** 60 + 2 ** 37);
  assert.equal(bitsToFloat(F.fix642float(8, 0, 4).r0), 0.5);
});

test('double results: dln of 0 is -infinity, dsqrt of a negative is -infinity', () => {
  const r = D.dln(0, 0);
  assert.equal(bitsToDouble(r.r0, r.r1), -Infinity);
  const s = D.dsqrt(0, 0xbff00000);
  assert.equal(bitsToDouble(s.r0, s.r1), -Infinity);
  const c = D.dcmp(0, 0x3ff00000, 0, 0x40000000); // 1 vs 2
  assert.equal(c.r0 | 0, -1);
});

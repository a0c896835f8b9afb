import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { specEncode } from './grpc-message.js';

describe('grpc-message spelling', () => {
  it('leaves printable ASCII alone but for %, and encodes the rest as UTF-8 bytes', () => {
    expect(specEncode('terms.price: must be ≥ 0, 100%')).toBe('terms.price: must be %E2%89%A5 0, 100%25');
  });

  it('reads back unchanged with decodeURI (grpc-js) and decodeURIComponent (Connect)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (message) => {
        const spelled = specEncode(message);
        expect(decodeURI(spelled)).toBe(message);
        expect(decodeURIComponent(spelled)).toBe(message);
      }),
    );
  });
});

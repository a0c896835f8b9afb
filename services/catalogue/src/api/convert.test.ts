import { create } from '@bufbuild/protobuf';
import { DefinitionTermsSchema, ExpiryMode } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CURRENCY, validTerms } from '../../test/support/arbitraries.js';
import { validateTerms } from '../domain/validate-terms.js';
import { termsFromJson, termsFromProto, termsToJson, termsToProto, storedTerms } from './convert.js';

describe('terms conversion', () => {
  it('normalized terms survive protobuf and its stored JSON unchanged', () => {
    fc.assert(
      fc.property(validTerms, (raw) => {
        const terms = validateTerms(raw, { currency: CURRENCY });
        expect(termsFromProto(termsToProto(terms))).toEqual(terms);
        expect(storedTerms(JSON.parse(JSON.stringify(termsToJson(terms))))).toEqual(terms);
        expect(termsFromJson(termsToJson(terms))).toEqual(termsToProto(terms));
      }),
    );
  });

  it('names the field of an enum value the proto does not know', () => {
    const t = create(DefinitionTermsSchema, { expiry: { mode: 42 as ExpiryMode } });
    expect(() => termsFromProto(t)).toThrow('terms.expiry.mode: unknown value 42');
    expect(() => termsFromProto(undefined)).toThrow('terms: required');
  });
});

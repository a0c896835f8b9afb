/**
 * ISO 4217 minor units (digits after the decimal point) of active currencies, plus the fund codes that
 * appear in invoices (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW). Precious metals and testing codes
 * (XAU, XTS, XXX …) have no minor unit and are deliberately absent.
 */
const MINOR_UNITS: Readonly<Record<string, number>> = Object.freeze({
  ...each(0, 'BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF'),
  ...each(3, 'BHD IQD JOD KWD LYD OMR TND'),
  ...each(4, 'CLF UYW'),
  ...each(
    2,
    'AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD ' +
      'CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL ' +
      'GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD ' +
      'LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN ' +
      'PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL ' +
      'THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL',
  ),
});

function each(units: number, codes: string): Record<string, number> {
  return Object.fromEntries(codes.split(' ').map((code) => [code, units]));
}

export class UnknownCurrency extends Error {
  override readonly name = 'UnknownCurrency';
  readonly field = 'currency_code';
  constructor(readonly currencyCode: string) {
    super(`currency_code ${JSON.stringify(currencyCode)} is not a known ISO 4217 currency`);
  }
}

export function isKnownCurrency(code: string): boolean {
  return Object.hasOwn(MINOR_UNITS, code);
}

/** Digits after the decimal point in `code` (USD 2, JPY 0, KWD 3); throws {@link UnknownCurrency}. */
export function minorUnits(code: string): number {
  const units = MINOR_UNITS[code];
  if (units === undefined || !Object.hasOwn(MINOR_UNITS, code)) throw new UnknownCurrency(code);
  return units;
}

/** Every currency code this library knows, sorted. */
export function knownCurrencies(): string[] {
  return Object.keys(MINOR_UNITS).sort();
}

export { minorUnits, isKnownCurrency, knownCurrencies, UnknownCurrency } from './currency.js';
export { allocate, prorate, AllocationError, type Rounding } from './allocate.js';
export {
  money,
  zero,
  parseAmount,
  parseMoney,
  formatAmount,
  formatMoney,
  add,
  subtract,
  negate,
  times,
  sum,
  compare,
  equals,
  isZero,
  allocateMoney,
  prorateMoney,
  CurrencyMismatch,
  InvalidAmount,
  type Money,
} from './money.js';

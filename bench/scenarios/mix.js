// Mix: 70% browse or search, 20% login or me, 10% checkout.
import { CHECKOUT_OPS, browse, login, me, scenarioOptions, search, shopperCheckout } from './lib.js';

export { handleSummary } from './lib.js';
export const options = scenarioOptions(['products', 'product', 'searchProducts', 'login', 'me', ...CHECKOUT_OPS]);

export default function () {
  const roll = Math.random();
  if (roll < 0.35) {
    browse();
  } else if (roll < 0.7) {
    search();
  } else if (roll < 0.8) {
    login();
  } else if (roll < 0.9) {
    me();
  } else {
    shopperCheckout();
  }
}

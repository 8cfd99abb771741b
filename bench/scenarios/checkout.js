// Checkout through a cart (add, address, shipping method, checkout with tok_visa and waitSeconds),
// answered once the saga CONFIRMED the order; CHECKOUT_FLOW=createOrder: createOrder in one request.
import { CHECKOUT_OPS, scenarioOptions, shopperCheckout } from './lib.js';

export { handleSummary } from './lib.js';
export const options = scenarioOptions(CHECKOUT_OPS);

export default function () {
  shopperCheckout();
}

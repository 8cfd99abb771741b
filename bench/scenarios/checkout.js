// Checkout: createOrder with tok_visa, then order(id) polled until the saga CONFIRMED it.
import { checkout, scenarioOptions } from './lib.js';

export { handleSummary } from './lib.js';
export const options = scenarioOptions(['createOrder', 'order']);

export default function () {
  checkout();
}

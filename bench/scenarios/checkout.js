// Checkout: createOrder with tok_visa and waitSeconds, answered once the saga CONFIRMED it.
import { checkout, scenarioOptions } from './lib.js';

export { handleSummary } from './lib.js';
export const options = scenarioOptions(['createOrder']);

export default function () {
  checkout();
}

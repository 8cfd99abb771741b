// me: an authenticated read (token verified at the gateway and by the account service).
import { me, scenarioOptions } from './lib.js';

export { handleSummary } from './lib.js';
export const options = scenarioOptions(['me']);

export default function () {
  me();
}

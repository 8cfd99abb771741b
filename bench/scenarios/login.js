// Login: a shopper signs in with the right password (one bcrypt verification per request).
import { login, scenarioOptions } from './lib.js';

export { handleSummary } from './lib.js';
export const options = scenarioOptions(['login']);

export default function () {
  login();
}

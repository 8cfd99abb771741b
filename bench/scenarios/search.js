// Search: searchProducts over the seeded catalog with whole words, stems, prefixes, typos, phrases.
import { scenarioOptions, search } from './lib.js';

export { handleSummary } from './lib.js';
export const options = scenarioOptions(['searchProducts']);

export default function () {
  search();
}

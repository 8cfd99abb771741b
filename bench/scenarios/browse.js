// Browse: a category page of products(first: 20) (sometimes the next page), then product(id).
import { browse, scenarioOptions } from './lib.js';

export { handleSummary } from './lib.js';
export const options = scenarioOptions(['products', 'product']);

export default function () {
  browse();
}

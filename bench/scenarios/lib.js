// What every scenario shares: the data the runner seeded, the GraphQL documents, one helper to
// post them, and the shopper's actions (browse, search, login, me, checkout).
//
// The runner (bench/run.py) passes:
//   BENCH_DATA     path of the JSON file with the gateway URL, categories, products, shoppers
//   VUS, DURATION  the fixed concurrency level and how long to hold it
//   SUMMARY        where handleSummary writes the summary as JSON
// A GraphQL answer with `errors` counts as a failed request, whatever its HTTP status.

import http from 'k6/http';
import { check } from 'k6';
import { SharedArray } from 'k6/data';
import { Counter, Rate, Trend } from 'k6/metrics';

const DATA = JSON.parse(open(__ENV.BENCH_DATA));
// GRAPHQL_URL points a run at another gateway (the one with its response cache off).
export const GRAPHQL_URL = __ENV.GRAPHQL_URL || DATA.graphql_url;
const categories = new SharedArray('categories', () => DATA.categories);
const checkoutProducts = new SharedArray('checkout products', () => DATA.checkout_product_ids);
const searchTerms = new SharedArray('search terms', () => DATA.search_terms);
const shoppers = new SharedArray('shoppers', () => DATA.shoppers);
const SHIPPING_METHOD = DATA.shipping_method;

export const errors = new Rate('gql_errors');
const ordersAccepted = new Counter('orders_accepted');
const ordersConfirmed = new Counter('orders_confirmed');
const ordersNotConfirmed = new Counter('orders_not_confirmed');
// Saga completion as the order service recorded it (history PENDING -> CONFIRMED), and as the
// shopper saw it (checkout or createOrder sent -> its answer, CONFIRMED). Both wait for the saga
// themselves (`waitSeconds`): no polling of `order(id)`.
const sagaDuration = new Trend('saga_duration', true);
const sagaObserved = new Trend('saga_observed', true);

const WAIT_SECONDS = Number(__ENV.WAIT_SECONDS || 10);
const SORTS = ['NEWEST', 'PRICE_ASC', 'PRICE_DESC', 'NAME'];
const ADDRESS = {
  name: 'Bench Shopper',
  line1: '1 Load Street',
  city: 'Berlin',
  postalCode: '10115',
  country: 'DE',
};

export const PRODUCTS = `
query Browse($category: String!, $sort: ProductSort!, $after: String) {
  products(first: 20, after: $after, sort: $sort, filter: {categorySlug: $category}) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id name price { amount currency } inStock featured } }
  }
}`;

export const PRODUCT = `
query Product($id: ID!) {
  product(id: $id) {
    id sku name description price { amount currency } stock inStock featured
    category { slug name }
    createdAt
  }
}`;

export const SEARCH = `
query Search($query: String!) {
  searchProducts(query: $query, first: 20) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id name price { amount currency } inStock } }
  }
}`;

export const LOGIN = `
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { accessToken expiresIn account { id } }
}`;

export const ME = `
query Me { me { id email name role } }`;

export const CREATE_ORDER = `
mutation Checkout($input: CreateOrderInput!, $wait: Int!) {
  createOrder(input: $input, waitSeconds: $wait) { id status total { amount currency } history { status at } }
}`;

// The cart checkout: the cart's id is enough of an answer until the order.
export const MY_CART = `query MyCart { myCart { id lines { id } } }`;
export const CREATE_CART = `mutation CreateCart { createCart { token } }`;
export const SET_CART_EMAIL = `
mutation Email($cart: String!, $email: String!) { setCartEmail(cartToken: $cart, email: $email) { id } }`;
export const ADD_TO_CART = `
mutation Add($cart: String, $product: ID!, $quantity: Int!) {
  addToCart(cartToken: $cart, productId: $product, quantity: $quantity) { id }
}`;
export const SET_CART_ADDRESS = `
mutation Address($cart: String, $address: ShippingAddressInput!) {
  setCartShippingAddress(cartToken: $cart, address: $address) { id }
}`;
export const SET_CART_METHOD = `
mutation Method($cart: String, $code: String!) {
  setCartShippingMethod(cartToken: $cart, code: $code) { total { amount currency } }
}`;
export const CHECKOUT = `
mutation Checkout($cart: String, $key: String!, $wait: Int!) {
  checkout(cartToken: $cart, paymentToken: "tok_visa", idempotencyKey: $key, waitSeconds: $wait) {
    id status total { amount currency } history { status at }
  }
}`;

const logged = { count: 0 };

// Post one document; returns `data` or null (and counts the error).
export function gql(op, query, variables, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) {
    headers.Authorization = `Bearer ${token}`;
  }
  const res = http.post(GRAPHQL_URL, JSON.stringify({ query, variables: variables || {} }), {
    headers,
    tags: { op },
  });
  let body = null;
  try {
    body = res.json();
  } catch (e) {
    body = null;
  }
  const ok = check(res, {
    'HTTP 200': (r) => r.status === 200,
    'GraphQL data without errors': () => body !== null && !body.errors && body.data != null,
  });
  errors.add(!ok, { op });
  if (!ok) {
    if (logged.count < 3) {
      logged.count += 1;
      console.warn(`${op}: HTTP ${res.status} ${String(res.body).slice(0, 300)}`);
    }
    return null;
  }
  return body.data;
}

function pick(items) {
  return items[Math.floor(Math.random() * items.length)];
}

// Shoppers do not ask for everything equally: the first items of a list (the popular categories,
// sorts and terms, the top of a page) are asked for far more often than the last. Zipf's law with
// exponent 1: the k-th item is asked for in proportion to 1/k. Cumulative weights per list length.
const zipfTables = {};
function zipfTable(n) {
  if (!zipfTables[n]) {
    const cumulative = [];
    let total = 0;
    for (let k = 1; k <= n; k += 1) {
      total += 1 / k;
      cumulative.push(total);
    }
    zipfTables[n] = cumulative.map((c) => c / total);
  }
  return zipfTables[n];
}

export function zipfIndex(n) {
  const table = zipfTable(n);
  const r = Math.random();
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (table[mid] < r) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

function popular(items) {
  return items[zipfIndex(items.length)];
}

export function shopper() {
  return shoppers[(__VU - 1) % shoppers.length];
}

// A category page (sometimes the next one), then one product of it: popular categories, sorts and
// the top of a page more often than the rest.
export function browse() {
  const variables = { category: popular(categories), sort: popular(SORTS), after: null };
  let data = gql('products', PRODUCTS, variables);
  if (data && data.products.pageInfo.hasNextPage && Math.random() < 0.5) {
    data = gql('products', PRODUCTS, { ...variables, after: data.products.pageInfo.endCursor });
  }
  if (data && data.products.edges.length > 0) {
    gql('product', PRODUCT, { id: popular(data.products.edges).node.id });
  }
}

// Popular terms more often than rare ones.
export function search() {
  gql('searchProducts', SEARCH, { query: popular(searchTerms) });
}

export function login() {
  const who = shopper();
  gql('login', LOGIN, { email: who.email, password: who.password });
}

export function me() {
  gql('me', ME, {}, shopper().token);
}

// "2026-01-02T03:04:05.123456+00:00" -> milliseconds since the epoch, keeping the microseconds.
export function parseTime(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$/.exec(text);
  if (!m) {
    return NaN;
  }
  const fraction = m[7] ? Number(`0.${m[7]}`) * 1000 : 0;
  let ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) + fraction;
  if (m[8] && m[8] !== 'Z') {
    const sign = m[8][0] === '-' ? -1 : 1;
    const digits = m[8].slice(1).replace(':', '');
    ms -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4))) * 60000;
  }
  return ms;
}

function lineItems() {
  const items = [{ productId: pick(checkoutProducts), quantity: 1 + Math.floor(Math.random() * 2) }];
  if (Math.random() < 0.3) {
    const other = pick(checkoutProducts);
    if (other !== items[0].productId) {
      items.push({ productId: other, quantity: 1 });
    }
  }
  return items;
}

// Counts an order answered after waiting: confirmed (with the saga's durations) or not.
function settled(order, sent) {
  ordersAccepted.add(1);
  if (order.status === 'CONFIRMED') {
    ordersConfirmed.add(1);
    sagaObserved.add(Date.now() - sent);
    const confirmed = order.history.find((h) => h.status === 'CONFIRMED');
    const duration = parseTime(confirmed.at) - parseTime(order.history[0].at);
    if (!Number.isNaN(duration)) {
      sagaDuration.add(duration);
    }
    return;
  }
  ordersNotConfirmed.add(1);
  errors.add(true, { op: 'saga' });
  if (logged.count < 3) {
    logged.count += 1;
    console.warn(`order ${order.id} is ${order.status}, not CONFIRMED, after waiting ${WAIT_SECONDS} s`);
  }
}

// The shopper's checkout through a cart: the account's cart when this virtual user has a shopper
// of its own (two sharing one account would check out each other's cart), else a guest cart with
// the shopper's e-mail; the products, a German address, the seeded shipping method, then checkout
// with tok_visa, answered once the saga has finished (or after WAIT_SECONDS).
export function checkout() {
  const own = __VU <= shoppers.length;
  const who = shopper();
  const token = own ? who.token : null;
  let cart = null;
  if (own) {
    if (!gql('myCart', MY_CART, {}, token)) {
      return;
    }
  } else {
    const created = gql('createCart', CREATE_CART, {});
    if (!created) {
      return;
    }
    cart = created.createCart.token;
    if (!gql('setCartEmail', SET_CART_EMAIL, { cart, email: who.email })) {
      return;
    }
  }
  for (const item of lineItems()) {
    if (!gql('addToCart', ADD_TO_CART, { cart, product: item.productId, quantity: item.quantity }, token)) {
      return;
    }
  }
  if (
    !gql('setCartShippingAddress', SET_CART_ADDRESS, { cart, address: ADDRESS }, token) ||
    !gql('setCartShippingMethod', SET_CART_METHOD, { cart, code: SHIPPING_METHOD }, token)
  ) {
    return;
  }
  const sent = Date.now();
  const key = `bench-${__VU}-${__ITER}-${sent}`;
  const placed = gql('checkout', CHECKOUT, { cart, key, wait: WAIT_SECONDS }, token);
  if (placed) {
    settled(placed.checkout, sent);
  }
}

// The figures before carts: createOrder with the items and address in one request
// (CHECKOUT_FLOW=createOrder), to compare with runs from then.
export function createOrderCheckout() {
  const sent = Date.now();
  const created = gql(
    'createOrder',
    CREATE_ORDER,
    { input: { items: lineItems(), paymentToken: 'tok_visa', shippingAddress: ADDRESS }, wait: WAIT_SECONDS },
    shopper().token,
  );
  if (created) {
    settled(created.createOrder, sent);
  }
}

export const CHECKOUT_OPS = [
  'myCart', 'createCart', 'setCartEmail', 'addToCart', 'setCartShippingAddress', 'setCartShippingMethod',
  'checkout', 'createOrder',
];

// CHECKOUT_FLOW=createOrder: the one-request checkout of earlier runs; otherwise through a cart.
export function shopperCheckout() {
  if (__ENV.CHECKOUT_FLOW === 'createOrder') {
    createOrderCheckout();
  } else {
    checkout();
  }
}

// The fixed concurrency level for the run's duration; per-operation latencies appear in the
// summary through thresholds that always hold.
export function scenarioOptions(ops) {
  const thresholds = {};
  for (const op of ops) {
    thresholds[`http_req_duration{op:${op}}`] = ['max>=0'];
  }
  return {
    scenarios: {
      main: {
        executor: 'constant-vus',
        vus: Number(__ENV.VUS || 8),
        duration: __ENV.DURATION || '20s',
        gracefulStop: '10s',
      },
    },
    thresholds,
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
    discardResponseBodies: false,
    noConnectionReuse: false,
  };
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY]: JSON.stringify(data) };
}

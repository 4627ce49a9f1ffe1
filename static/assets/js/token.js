// Signed join links (docs/protocol.md, "Signed links"): /{room}#jwt=TOKEN or
// /{room}?jwt=TOKEN. The token is only read here, never checked: the server
// decides what it is worth. Its payload is decoded locally for one thing, the
// name to prefill, and goes nowhere but into `join`.

/** The `jwt` parameter of the fragment or the query, or null. Does not change the address bar. */
export function tokenFromLocation(loc = location) {
  const fromHash = new URLSearchParams(loc.hash.slice(1)).get('jwt');
  if (fromHash) return fromHash;
  const fromQuery = new URLSearchParams(loc.search).get('jwt');
  return fromQuery || null;
}

/** The query string (with "?", or empty) without its `jwt` parameter: the rest is kept as it was. */
export function searchWithoutToken(search = location.search) {
  const params = new URLSearchParams(search);
  if (!params.has('jwt')) return search;
  params.delete('jwt');
  const rest = params.toString();
  return rest ? `?${rest}` : '';
}

function base64urlDecode(text) {
  let b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  while (b64.length % 4) b64 += '=';
  const binary = atob(b64);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
}

/** The token's payload as an object, or null when it is not a readable JWT. */
export function tokenPayload(jwt) {
  if (typeof jwt !== 'string') return null;
  const parts = jwt.split('.');
  if (parts.length !== 3 || !parts[1]) return null;
  try {
    const payload = JSON.parse(base64urlDecode(parts[1]));
    return payload && typeof payload === 'object' && !Array.isArray(payload) ? payload : null;
  } catch {
    return null;
  }
}

/** `context.user.name` from the token, trimmed, or null. The server uses it instead of our `name`. */
export function tokenName(jwt) {
  const payload = tokenPayload(jwt);
  const user = payload && payload.context && payload.context.user;
  const name = user && typeof user.name === 'string' ? user.name.trim() : '';
  return name || null;
}

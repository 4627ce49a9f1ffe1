// The small JSON HTTP API of the server. Every call resolves (never throws)
// to { ok, status, data, code, retryAfter }: `code` is the server's error
// code, or 'network' when the server could not be reached at all; retryAfter
// (seconds) comes with `too-many-attempts`.

async function request(method, path, body) {
  const init = {
    method,
    headers: { Accept: 'application/json' },
    credentials: 'same-origin',
    cache: 'no-store',
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    return { ok: false, status: 0, data: null, code: 'network', retryAfter: null };
  }
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch {
      // An empty or non-JSON body: the status alone has to do.
    }
  }
  const error = data && data.error && typeof data.error === 'object' ? data.error : null;
  const code = error && typeof error.code === 'string' ? error.code : null;
  let retryAfter = error && Number.isFinite(error.retryAfter) ? error.retryAfter : null;
  if (retryAfter === null && res.headers.get('Retry-After')) {
    const header = Number(res.headers.get('Retry-After'));
    if (Number.isFinite(header)) retryAfter = header;
  }
  return { ok: res.ok, status: res.status, data, code, retryAfter };
}

const roomPath = (name) => `/api/rooms/${encodeURIComponent(name)}`;

export const me = () => request('GET', '/api/me');
export const login = (username, password) => request('POST', '/api/login', { username, password });
export const logout = () => request('POST', '/api/logout');
export const createRoom = (name) => request('POST', '/api/rooms', { name });
export const getRoom = (name) => request('GET', roomPath(name));
/** The host's rooms: {rooms: [{room, url, running, participants}]}. */
export const listRooms = () => request('GET', '/api/rooms');
export const endRoom = (name) => request('POST', `${roomPath(name)}/end`);
export const deleteRoom = (name) => request('DELETE', roomPath(name));
export const setup = (token, username, password) => request('POST', '/api/setup', { token, username, password });

// The small JSON HTTP API of the server. Every call resolves (never throws)
// to { ok, status, data, code }: `code` is the server's error code, or
// 'network' when the server could not be reached at all.

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
    return { ok: false, status: 0, data: null, code: 'network' };
  }
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch {
      // An empty or non-JSON body: the status alone has to do.
    }
  }
  const code = data && data.error && typeof data.error.code === 'string' ? data.error.code : null;
  return { ok: res.ok, status: res.status, data, code };
}

export const me = () => request('GET', '/api/me');
export const login = (username, password) => request('POST', '/api/login', { username, password });
export const logout = () => request('POST', '/api/logout');
export const createRoom = (name) => request('POST', '/api/rooms', { name });
export const getRoom = (name) => request('GET', `/api/rooms/${encodeURIComponent(name)}`);
export const setup = (token, username, password) => request('POST', '/api/setup', { token, username, password });

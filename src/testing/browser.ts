// A user agent for tests of the sign-in pages: follows nothing by itself and keeps cookies by path, as a
// browser would, so a test walks a redirect flow one hop at a time and sees every page.
export class TestBrowser {
  readonly #origin: string;
  readonly #cookies = new Map<string, { value: string; path: string }>();

  constructor(origin: string) {
    this.#origin = origin;
  }

  async get(url: string | URL): Promise<Response> {
    return this.#send(url, {});
  }

  async delete(url: string | URL): Promise<Response> {
    return this.#send(url, { method: 'DELETE' });
  }

  async postForm(url: string | URL, fields: Record<string, string>): Promise<Response> {
    return this.#send(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
  }

  async #send(
    url: string | URL,
    init: { method?: string; headers?: Record<string, string>; body?: string },
  ): Promise<Response> {
    const target = new URL(url, this.#origin);
    const cookie = [...this.#cookies]
      .filter(([, c]) => target.pathname.startsWith(c.path))
      .map(([name, c]) => `${name}=${c.value}`)
      .join('; ');
    const response = await fetch(target, {
      ...init,
      redirect: 'manual',
      headers: { ...init.headers, ...(cookie ? { cookie } : {}) },
    });
    for (const header of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = header.split(';').map((part) => part.trim());
      const split = pair.indexOf('=');
      const name = pair.slice(0, split);
      const value = pair.slice(split + 1);
      const path = attributes.find((a) => /^path=/i.test(a))?.slice(5) ?? '/';
      const expired = attributes.some((a) => /^expires=Thu, 01 Jan 1970/i.test(a));
      if (expired || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, { value, path });
    }
    return response;
  }
}

/** The Location of a redirect, which must be one. */
export function location(response: Response): string {
  const target = response.headers.get('location');
  if (response.status < 300 || response.status >= 400 || !target) {
    throw new Error(`expected a redirect, got ${response.status}`);
  }
  return target;
}

/** A tiny element builder for the pages: plain DOM, no framework. */

type Attributes = Record<string, string | number | boolean | undefined>;
type Child = Node | string | null | undefined | false;

/**
 * h('progress', { max: 100, value: 0, 'aria-labelledby': id }) — attributes are set with
 * setAttribute (false/undefined leave them out); string children become text nodes, so no
 * file name or log text is ever parsed as HTML.
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attributes: Attributes = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child);
  }
  return element;
}

/** The element with this id, or an error naming it (the HTML and the script disagree). */
export function byId<T extends HTMLElement>(id: string, type: new () => T): T {
  const element = document.getElementById(id);
  if (!(element instanceof type)) throw new Error(`Page is missing #${id}`);
  return element;
}

let counter = 0;
/** A page-unique id for label/aria references. */
export function uniqueId(prefix: string): string {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** Options read from the page's query string: ?token=...&transport=socket.io */
export function clientOptionsFromLocation(): { url: string; token?: string; transport?: 'ws' | 'socket.io' } {
  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  const transport = params.get('transport');
  return {
    url: location.origin,
    ...(token ? { token } : {}),
    ...(transport === 'ws' || transport === 'socket.io' ? { transport } : {}),
  };
}

/** How near the bottom (px) still counts as following the tail: scroll positions are fractional. */
const TAIL_SLACK_PX = 4;

/**
 * Keeps a log list to its last `max` lines and follows its tail: the newest line is scrolled
 * into view, unless the reader has scrolled up to read an older one.
 */
export function appendLine(list: HTMLElement, line: HTMLElement, max = 200): void {
  const following = list.scrollHeight - list.scrollTop - list.clientHeight <= TAIL_SLACK_PX;
  list.append(line);
  while (list.childElementCount > max) list.firstElementChild?.remove();
  if (following) list.scrollTop = list.scrollHeight;
}

/** "12:34:56" for log lines. */
export function clock(at: number = Date.now()): string {
  return new Date(at).toLocaleTimeString([], { hour12: false });
}

// The console's entry point: client-side routing, session, navigation chrome.
import { session, logout, setUnauthorizedHandler } from './api.js';
import { h, mount, announce, errorBox } from './dom.js';

const routes = [
  { pattern: /^\/login$/, page: 'login', title: 'Log in', public: true },
  { pattern: /^\/(?:overview)?$/, page: 'overview', title: 'Overview', nav: '/' },
  { pattern: /^\/devices$/, page: 'devices', title: 'Devices', nav: '/devices' },
  { pattern: /^\/devices\/(\d+)$/, page: 'device', title: 'Device', nav: '/devices' },
  { pattern: /^\/templates$/, page: 'templates', title: 'Templates', nav: '/templates' },
  { pattern: /^\/templates\/([\w-]+)$/, page: 'templates', title: 'Template', nav: '/templates' },
  { pattern: /^\/users$/, page: 'users', title: 'Users', nav: '/users' },
  { pattern: /^\/ota$/, page: 'ota', title: 'OTA', nav: '/ota' },
  { pattern: /^\/sql$/, page: 'sql', title: 'SQL', nav: '/sql' },
];

const main = document.getElementById('main');
let cleanup = null;
let generation = 0; // counts renders, so a page that finishes loading after the user moved on is stopped

/** Navigate to `path` inside the console. */
export function go(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path); else history.pushState(null, '', path);
  render();
}

/** Set the page title (document and heading). */
export function setTitle(text) {
  document.title = `${text} · pinhouse`;
}

function chrome() {
  const user = session.user;
  const signedIn = !!session.token;
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('account').hidden = !signedIn;
  document.getElementById('who').textContent = user ? `${user.email} (${user.role})` : '';
}

async function render() {
  const mine = ++generation;
  if (cleanup) { try { cleanup(); } catch { /* ignore */ } cleanup = null; }
  const path = location.pathname.replace(/\/+$/, '') || '/';
  const route = routes.find((r) => r.pattern.test(path));
  if (!route) {
    mount(main, h('h1', {}, 'Page not found'), h('p', {}, 'There is no console page at ', h('code', {}, path), '. ',
      h('a', { href: '/', 'data-link': '' }, 'Go to the overview')));
    return;
  }
  if (!route.public && !session.token) {
    go(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
    return;
  }
  chrome();
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === route.nav) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  setTitle(route.title);
  const params = route.pattern.exec(path).slice(1);
  mount(main, h('p.muted', {}, 'Loading…'));
  try {
    const module = await import(`./pages/${route.page}.js`);
    const result = await module.render(main, { params, query: new URLSearchParams(location.search), go });
    if (mine !== generation) {
      // Navigated elsewhere meanwhile: stop this page's timers at once.
      if (typeof result === 'function') { try { result(); } catch { /* ignore */ } }
      return;
    }
    if (typeof result === 'function') cleanup = result;
  } catch (err) {
    if (mine !== generation) return;
    mount(main, h('h1', {}, route.title), errorBox(err));
  }
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    if (document.activeElement === document.body || document.activeElement === main || !main.contains(document.activeElement)) heading.focus();
    announce(heading.textContent);
  }
}

document.addEventListener('click', (event) => {
  const a = event.target.closest('a[data-link]');
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  go(a.getAttribute('href'));
});
window.addEventListener('popstate', render);
document.getElementById('logout').addEventListener('click', async () => {
  try { await logout(); } catch { /* the session is cleared anyway */ }
  chrome();
  go('/login', { replace: true });
});
setUnauthorizedHandler(() => {
  session.clear();
  chrome();
  if (location.pathname !== '/login') go(`/login?next=${encodeURIComponent(location.pathname)}&expired=1`, { replace: true });
});

render();

import { login, session } from '../api.js';
import { h, mount, field, errorBox } from '../dom.js';

export async function render(main, { query, go }) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const message = h('div', { 'aria-live': 'assertive' });
  const submit = h('button', { type: 'submit' }, 'Log in');
  const next = query.get('next');
  const form = h('form.card.login', {
    'aria-labelledby': 'login-title',
    async onsubmit(event) {
      event.preventDefault();
      submit.disabled = true;
      mount(message);
      try {
        await login(email.value.trim(), password.value);
        go(next && next.startsWith('/') && !next.startsWith('//') ? next : '/', { replace: true });
      } catch (err) {
        mount(message, errorBox(err.status === 401 ? new Error('Wrong e-mail or password.') : err));
        password.select();
        submit.disabled = false;
      }
    },
  },
  h('h1#login-title', {}, 'Log in to pinhouse'),
  query.get('expired') ? h('p.notice', { role: 'note' }, 'Your session has ended. Please log in again.') : null,
  field('E-mail', email),
  field('Password', password),
  message,
  h('div.actions', {}, submit));
  if (session.token && !query.get('expired')) {
    mount(main, h('h1', {}, 'Already logged in'), h('p', {}, h('a', { href: '/', 'data-link': '' }, 'Go to the overview')));
    return;
  }
  mount(main, form);
  email.focus();
}

import { login, acceptInvitation, session } from '../api.js';
import { h, mount, field, errorBox, announce } from '../dom.js';

/** Accepting an invitation: the secret token from the inviter, a name and a password. */
function acceptForm(go) {
  const token = h('input', { type: 'text', name: 'invitation-token', required: true, autocomplete: 'off', spellcheck: 'false' });
  const name = h('input', { type: 'text', name: 'invitation-name', autocomplete: 'name' });
  const password = h('input', { type: 'password', name: 'invitation-password', required: true, minlength: 8, autocomplete: 'new-password' });
  const message = h('div', { 'aria-live': 'assertive' });
  const submit = h('button', { type: 'submit' }, 'Accept and log in');
  return h('form.card.login', {
    id: 'accept-invitation',
    'aria-labelledby': 'accept-title',
    async onsubmit(event) {
      event.preventDefault();
      submit.disabled = true;
      mount(message);
      try {
        const user = await acceptInvitation(token.value.trim(), password.value, name.value.trim());
        announce(`Welcome, ${user.email}`);
        await login(user.email, password.value);
        go('/', { replace: true });
      } catch (err) {
        mount(message, errorBox(err));
        submit.disabled = false;
      }
    },
  },
  h('h2#accept-title', {}, 'Accept an invitation'),
  h('p.muted.small', {}, 'Paste the token you were given by the person who invited you and choose your password (at least 8 characters). Your e-mail address is the one you were invited with.'),
  field('Invitation token', token),
  field('Your name', name),
  field('Password', password),
  message,
  h('div.actions', {}, submit));
}

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
  const accept = acceptForm(go);
  accept.hidden = true;
  const toggle = h('button.link', {
    type: 'button', 'aria-expanded': 'false', 'aria-controls': 'accept-invitation',
    onclick() {
      accept.hidden = !accept.hidden;
      toggle.setAttribute('aria-expanded', String(!accept.hidden));
      if (!accept.hidden) accept.querySelector('input').focus();
    },
  }, 'Accept an invitation');
  mount(main, form, h('p.login.center', {}, 'Invited to pinhouse? ', toggle), accept);
  email.focus();
}

// Users, roles, organizations and invitations (admins).
import { get, post, optional, session, ApiError } from '../api.js';
import { h, mount, field, empty, errorBox, notice, table, when, announce } from '../dom.js';

const ROLES = ['admin', 'staff', 'user'];

export async function render(main) {
  const me = session.user;
  if (!me || me.role !== 'admin') {
    mount(main, h('h1', {}, 'Users'), notice('Only admin users can manage users, roles and invitations.'));
    return;
  }
  const [users, orgs] = await Promise.all([get('/api/v1/users'), get('/api/v1/organizations')]);
  const orgName = new Map(orgs.map((o) => [o.id, o.name]));

  const email = h('input', { type: 'email', name: 'email', required: true, autocomplete: 'off' });
  const name = h('input', { type: 'text', name: 'name' });
  const role = h('select', { name: 'role' }, ROLES.map((r) => h('option', { value: r }, r)));
  role.value = 'user';
  const password = h('input', { type: 'password', name: 'password', required: true, autocomplete: 'new-password', minlength: 8 });
  const org = h('select', { name: 'org' }, orgs.map((o) => h('option', { value: o.id }, o.name)));
  org.value = String(me.org_id);
  const userMessage = h('div', { 'aria-live': 'polite' });
  const list = h('div');

  function drawUsers() {
    mount(list, users.length ? table('Users', ['E-mail', 'Name', 'Role', 'Organization', 'Created'], users.map((u) => h('tr', {},
      h('td', {}, u.email), h('td', {}, u.name || '–'), h('td', {}, u.role), h('td', {}, orgName.get(u.org_id) || String(u.org_id)), h('td', {}, when(u.created_at)))))
      : empty('No users.'));
  }
  drawUsers();

  const orgNameInput = h('input', { type: 'text', name: 'org-name', required: true });
  const orgParent = h('select', { name: 'org-parent' }, orgs.map((o) => h('option', { value: o.id }, o.name)));
  orgParent.value = String(me.org_id);
  const orgMessage = h('div', { 'aria-live': 'polite' });
  const orgList = h('div');
  const drawOrgs = () => mount(orgList, table('Organizations', ['Name', 'Parent', 'Created'], orgs.map((o) => h('tr', {},
    h('td', {}, o.name), h('td', {}, o.parent_id ? (orgName.get(o.parent_id) || String(o.parent_id)) : '–'), h('td', {}, when(o.created_at))))));
  drawOrgs();

  const invitations = h('section', { 'aria-labelledby': 'inv-title' }, h('h2#inv-title', {}, 'Invitations'));

  mount(main,
    h('h1', {}, 'Users'),
    list,
    h('form.card', {
      'aria-labelledby': 'add-user-title',
      async onsubmit(e) {
        e.preventDefault();
        mount(userMessage);
        try {
          const user = await post('/api/v1/users', { email: email.value.trim(), name: name.value.trim(), role: role.value, password: password.value, org_id: Number(org.value) });
          users.push(user);
          drawUsers();
          e.target.reset();
          role.value = 'user';
          announce(`User ${user.email} created`);
          mount(userMessage, h('p', { role: 'status' }, `User ${user.email} created.`));
        } catch (err) {
          mount(userMessage, errorBox(err));
        }
      },
    }, h('h2#add-user-title', {}, 'Add a user'),
    h('div.row', {}, field('E-mail', email), field('Name', name), field('Role', role), field('Organization', org), field('Initial password', password)),
    userMessage, h('div.actions', {}, h('button', { type: 'submit' }, 'Create user'))),
    h('h2', {}, 'Organizations'),
    orgList,
    h('form.card', {
      'aria-labelledby': 'add-org-title',
      async onsubmit(e) {
        e.preventDefault();
        mount(orgMessage);
        try {
          const created = await post('/api/v1/organizations', { name: orgNameInput.value.trim(), parent_id: Number(orgParent.value) });
          orgs.push(created);
          orgName.set(created.id, created.name);
          for (const select of [org, orgParent]) select.append(h('option', { value: created.id }, created.name));
          drawOrgs();
          orgNameInput.value = '';
          mount(orgMessage, h('p', { role: 'status' }, `Organization ${created.name} created.`));
        } catch (err) {
          mount(orgMessage, errorBox(err));
        }
      },
    }, h('h2#add-org-title', {}, 'Add an organization'),
    h('div.row', {}, field('Name', orgNameInput), field('Parent', orgParent), h('button', { type: 'submit' }, 'Create organization')),
    orgMessage),
    invitations);

  try {
    const reply = await optional('/api/v1/invitations');
    if (reply.missing) invitations.append(notice('Invitations are not available on this server yet: add users with an initial password above.'));
    else {
      const rows = Array.isArray(reply.data) ? reply.data : [];
      invitations.append(rows.length ? table('Invitations', ['E-mail', 'Role', 'Expires'], rows.map((i) => h('tr', {},
        h('td', {}, i.email), h('td', {}, i.role || '–'), h('td', {}, when(i.expires_at))))) : empty('No open invitations.'));
    }
  } catch (err) {
    invitations.append(errorBox(err instanceof ApiError ? err : new Error(String(err))));
  }
}

// Users, roles, organizations (admins) and invitations (admins; staff invite users into their
// own organization).
import { get, post, del, session } from '../api.js';
import { h, mount, field, empty, errorBox, notice, table, when, announce } from '../dom.js';

const ROLES = ['admin', 'staff', 'user'];

export async function render(main) {
  const me = session.user;
  if (!me || (me.role !== 'admin' && me.role !== 'staff')) {
    mount(main, h('h1', {}, 'Users'), notice('Only admin users can manage users, roles and organizations, and only admin and staff users can invite people.'));
    return;
  }
  const isAdmin = me.role === 'admin';
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

  const invitations = invitationSection(me, isAdmin, orgs, orgName);

  const addUser = h('form.card', {
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
        org.value = String(me.org_id);
        announce(`User ${user.email} created`);
        mount(userMessage, h('p', { role: 'status' }, `User ${user.email} created.`));
      } catch (err) {
        mount(userMessage, errorBox(err));
      }
    },
  }, h('h2#add-user-title', {}, 'Add a user'),
  h('div.row', {}, field('E-mail', email), field('Name', name), field('Role', role), field('Organization', org), field('Initial password', password)),
  userMessage, h('div.actions', {}, h('button', { type: 'submit' }, 'Create user')));

  const addOrg = h('form.card', {
    'aria-labelledby': 'add-org-title',
    async onsubmit(e) {
      e.preventDefault();
      mount(orgMessage);
      try {
        const created = await post('/api/v1/organizations', { name: orgNameInput.value.trim(), parent_id: Number(orgParent.value) });
        orgs.push(created);
        orgName.set(created.id, created.name);
        for (const select of [org, orgParent, invitations.orgSelect]) select.append(h('option', { value: created.id }, created.name));
        drawOrgs();
        invitations.redraw();
        orgNameInput.value = '';
        mount(orgMessage, h('p', { role: 'status' }, `Organization ${created.name} created.`));
      } catch (err) {
        mount(orgMessage, errorBox(err));
      }
    },
  }, h('h2#add-org-title', {}, 'Add an organization'),
  h('div.row', {}, field('Name', orgNameInput), field('Parent', orgParent), h('button', { type: 'submit' }, 'Create organization')),
  orgMessage);

  mount(main,
    h('h1', {}, 'Users'),
    list,
    isAdmin ? addUser : notice('Only admin users can add users directly or change organizations; invite people below.'),
    h('h2', {}, 'Organizations'),
    orgList,
    isAdmin ? addOrg : null,
    invitations.el);
  await invitations.load();
}

/** Open invitations (list, revoke) and the form to invite someone. */
function invitationSection(me, isAdmin, orgs, orgName) {
  let rows = [];
  const listArea = h('div', {}, h('p.muted', {}, 'Loading…'));
  const listMessage = h('div', { 'aria-live': 'polite' });

  const email = h('input', { type: 'email', name: 'invite-email', required: true, autocomplete: 'off' });
  // Inviting admins or staff hands out management rights: admins only.
  const roles = isAdmin ? ROLES : ['user'];
  const role = h('select', { name: 'invite-role' }, roles.map((r) => h('option', { value: r }, r)));
  role.value = 'user';
  const orgSelect = h('select', { name: 'invite-org' }, (isAdmin ? orgs : orgs.filter((o) => o.id === me.org_id)).map((o) => h('option', { value: o.id }, o.name)));
  orgSelect.value = String(me.org_id);
  const message = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit' }, 'Create invitation');

  function draw() {
    mount(listArea, rows.length
      ? table('Invitations', ['E-mail', 'Role', 'Organization', 'Invited', 'Expires', 'Actions'], rows.map((i) => h('tr', {},
        h('td', {}, i.email),
        h('td', {}, i.role),
        h('td', {}, orgName.get(i.org_id) || String(i.org_id)),
        h('td', {}, when(i.created_at)),
        h('td', {}, when(i.expires_at)),
        h('td', {}, h('button.danger', {
          type: 'button', 'data-invitation': i.id, 'aria-label': `Revoke the invitation of ${i.email}`,
          onclick: () => revoke(i),
        }, 'Revoke')))))
      : empty('No open invitations.'));
  }

  async function load() {
    try {
      rows = await get('/api/v1/invitations');
      draw();
    } catch (err) {
      mount(listArea, errorBox(new Error(`Could not read the invitations: ${err.message}`)));
    }
  }

  async function revoke(invitation) {
    if (!window.confirm(`Revoke the invitation of ${invitation.email}? Its token stops working.`)) return;
    mount(listMessage);
    const index = rows.findIndex((r) => r.id === invitation.id);
    try {
      await del(`/api/v1/invitations/${invitation.id}`);
      rows = rows.filter((r) => r.id !== invitation.id);
      draw();
      announce(`Invitation of ${invitation.email} revoked`);
      mount(listMessage, h('p', { role: 'status' }, `Invitation of ${invitation.email} revoked.`));
      // Focus the next invitation's button, or the form when none is left.
      const buttons = listArea.querySelectorAll('button[data-invitation]');
      (buttons[Math.min(index, buttons.length - 1)] || email).focus();
    } catch (err) {
      mount(listMessage, errorBox(err));
    }
  }

  const form = h('form.card', {
    'aria-labelledby': 'invite-title',
    async onsubmit(e) {
      e.preventDefault();
      mount(message);
      submit.disabled = true;
      try {
        const created = await post('/api/v1/invitations', { email: email.value.trim(), role: role.value, org_id: Number(orgSelect.value) });
        const { token, ...invitation } = created;
        rows.push(invitation);
        draw();
        email.value = '';
        const secret = h('code.secret', { id: 'invitation-token' }, token);
        const copyStatus = h('span', { 'aria-live': 'polite' });
        const copy = h('button.secondary', {
          type: 'button', 'aria-describedby': 'invitation-token',
          async onclick() {
            try {
              await navigator.clipboard.writeText(token);
              copyStatus.textContent = ' Copied.';
            } catch {
              const range = document.createRange();
              range.selectNodeContents(secret);
              getSelection().removeAllRanges();
              getSelection().addRange(range);
              copyStatus.textContent = ' Selected: copy it with Ctrl+C.';
            }
          },
        }, 'Copy token');
        mount(message, h('div.card.result', {},
          h('p', { role: 'status' }, `Invitation for ${invitation.email} (${invitation.role}) created. Give them this token; it is shown only this once:`),
          h('p', {}, secret),
          h('p', {}, copy, copyStatus),
          h('p.muted.small', {}, `They open this console's log-in page, choose “Accept an invitation”, paste the token and pick their password, before ${when(invitation.expires_at)}.`)));
        announce(`Invitation for ${invitation.email} created`);
      } catch (err) {
        mount(message, errorBox(err));
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('h2#invite-title', {}, 'Invite someone'),
  h('div.row', {}, field('E-mail', email), field('Role', role), field('Organization', orgSelect), submit),
  isAdmin ? null : h('p.muted.small', {}, 'Staff members invite users into their own organization; admins can invite admins and staff.'),
  message);

  const el = h('section', { 'aria-labelledby': 'inv-title' }, h('h2#inv-title', {}, 'Invitations'), listMessage, listArea, form);
  return { el, load, orgSelect, redraw: draw };
}

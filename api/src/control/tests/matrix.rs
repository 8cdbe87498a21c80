//! The authorization matrix: every REST endpoint × role (admin, staff, user of organization A)
//! × target (A itself and things the caller owns, a sub-organization of A, a sibling
//! organization B), with the expected answer computed from [`RULES`] alone. Allowed requests
//! must succeed; refused ones must answer 404 when the caller may not even read the target and
//! 403 otherwise — never anything in between.

use serde_json::Value;

use super::*;
use crate::control::permissions::{Action, RULES, Scope};

/// Where a target lives relative to the caller (org A).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    /// In A, owned by the caller (devices: owner; users: the caller itself).
    Mine,
    /// In A, owned by someone else.
    OwnOrg,
    /// In A1, a child of A.
    SubOrg,
    /// In B, a sibling of A under the root.
    OtherOrg,
}

const PLACES: [Place; 4] = [Place::Mine, Place::OwnOrg, Place::SubOrg, Place::OtherOrg];

fn scope(role: Role, action: Action) -> Scope {
    let rule = RULES.iter().find(|r| r.action == action).unwrap();
    match role {
        Role::Admin => rule.admin,
        Role::Staff => rule.staff,
        Role::User => rule.user,
    }
}

/// Whether the rules table lets `role` reach a target at `place` for `action`.
fn covers(role: Role, action: Action, place: Place) -> bool {
    match scope(role, action) {
        Scope::Never => false,
        Scope::Own => place == Place::Mine,
        Scope::Org => matches!(place, Place::Mine | Place::OwnOrg),
        Scope::Subtree => place != Place::OtherOrg,
    }
}

fn read_action(action: Action) -> Action {
    use Action::*;
    match action {
        OrganizationRead | OrganizationManage => OrganizationRead,
        UserRead | UserManage | UserInvite | UserTransfer => UserRead,
        TemplateRead | TemplateManage => TemplateRead,
        DeviceRead | DeviceCreate | DeviceManage | DeviceTransfer | DeviceClaim
        | DeviceBatchCreate => DeviceRead,
        TokenManage => TokenManage,
        AuditRead => AuditRead,
        NotificationRead | NotificationManage => NotificationRead,
        AutomationRead | AutomationManage => AutomationRead,
    }
}

struct World {
    org_a: u32,
    org_a1: u32,
    org_b: u32,
    /// Template per organization: (A, A1, B).
    templates: [String; 3],
    /// Callers in A: (role, user id, session token).
    callers: Vec<(Role, u32, String)>,
    /// Another user of A (owner of `OwnOrg` devices).
    other_in_a: Principal,
}

impl World {
    fn org(&self, place: Place) -> u32 {
        match place {
            Place::Mine | Place::OwnOrg => self.org_a,
            Place::SubOrg => self.org_a1,
            Place::OtherOrg => self.org_b,
        }
    }

    fn template(&self, place: Place) -> &str {
        match place {
            Place::Mine | Place::OwnOrg => &self.templates[0],
            Place::SubOrg => &self.templates[1],
            Place::OtherOrg => &self.templates[2],
        }
    }
}

async fn add_user(server: &TestServer, org_id: u32, email: &str, role: Role) -> (u32, String) {
    let user = server
        .control
        .create_user(org_id, &new_user(email, "matrix-password", role))
        .await
        .unwrap();
    (user.id, server.login(email, "matrix-password").await)
}

async fn world(server: &TestServer) -> World {
    let control = &server.control;
    let org_a = control.create_organization("A", Some(1)).await.unwrap().id;
    let org_a1 = control
        .create_organization("A1", Some(org_a))
        .await
        .unwrap()
        .id;
    let org_b = control.create_organization("B", Some(1)).await.unwrap().id;
    let mut templates = Vec::new();
    for org in [org_a, org_a1, org_b] {
        let new = NewTemplate {
            name: format!("T{org}"),
            description: String::new(),
            datastreams: Vec::new(),
            events: Vec::new(),
            metadata: Vec::new(),
            org_id: None,
            dashboard: None,
        };
        templates.push(control.create_template(org, &new).await.unwrap().id);
    }
    let mut callers = Vec::new();
    for role in [Role::Admin, Role::Staff, Role::User] {
        let (id, token) =
            add_user(server, org_a, &format!("{}@a.example", role.as_str()), role).await;
        callers.push((role, id, token));
    }
    let (other_id, _) = add_user(server, org_a, "other@a.example", Role::User).await;
    World {
        org_a,
        org_a1,
        org_b,
        templates: templates.try_into().unwrap(),
        callers,
        other_in_a: Principal {
            user_id: other_id,
            org_id: org_a,
            email: "other@a.example".into(),
            role: Role::User,
            scopes: None,
        },
    }
}

/// A fresh device at `place`, owned by `caller` when `place` is `Mine`.
async fn device_at(server: &TestServer, w: &World, caller: &Principal, place: Place) -> u32 {
    let owner = match place {
        Place::Mine => caller.clone(),
        Place::OwnOrg => w.other_in_a.clone(),
        Place::SubOrg | Place::OtherOrg => Principal {
            org_id: w.org(place),
            ..w.other_in_a.clone()
        },
    };
    let new = NewDevice {
        name: "M".into(),
        template_id: w.template(place).to_owned(),
        org_id: None,
    };
    server
        .control
        .create_device(&owner, w.org(place), &new)
        .await
        .unwrap()
        .id
}

/// A fresh user at `place` (the caller itself for `Mine`).
async fn user_at(
    server: &TestServer,
    w: &World,
    caller: &Principal,
    place: Place,
    n: usize,
) -> u32 {
    if place == Place::Mine {
        return caller.user_id;
    }
    let email = format!("t{n}-{}@m.example", caller.user_id);
    server
        .control
        .create_user(
            w.org(place),
            &new_user(&email, "matrix-password", Role::User),
        )
        .await
        .unwrap()
        .id
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Acts on an organization (create inside it, read, rename).
    Org,
    Device,
    User,
    Template,
    Invitation,
    Webhook,
    Automation,
}

/// A body of `POST /api/v1/automations` that needs no device.
const AUTOMATION_BODY: &str = r#"{"name":"N","org_id":{org},"trigger":{"type":"schedule","at":"07:00","time_zone":"UTC"},"actions":[{"type":"notify","subject":"s"}]}"#;

/// (method, path with `{id}`, body with `{org}` / `{template}` placeholders, action, kind).
const ENDPOINTS: &[(&str, &str, &str, Action, Kind)] = &[
    (
        "GET",
        "/api/v1/organizations/{id}",
        "",
        Action::OrganizationRead,
        Kind::Org,
    ),
    (
        "PATCH",
        "/api/v1/organizations/{id}",
        r#"{"name":"R"}"#,
        Action::OrganizationManage,
        Kind::Org,
    ),
    (
        "POST",
        "/api/v1/organizations",
        r#"{"name":"N","parent_id":{org}}"#,
        Action::OrganizationManage,
        Kind::Org,
    ),
    (
        "POST",
        "/api/v1/users",
        r#"{"email":"{email}","password":"long-enough","role":"user","org_id":{org}}"#,
        Action::UserManage,
        Kind::Org,
    ),
    (
        "POST",
        "/api/v1/invitations",
        r#"{"email":"{email}","role":"user","org_id":{org}}"#,
        Action::UserInvite,
        Kind::Org,
    ),
    (
        "POST",
        "/api/v1/templates",
        r#"{"name":"N","org_id":{org}}"#,
        Action::TemplateManage,
        Kind::Org,
    ),
    (
        "POST",
        "/api/v1/devices",
        r#"{"name":"N","template_id":"{template}","org_id":{org}}"#,
        Action::DeviceCreate,
        Kind::Org,
    ),
    (
        "GET",
        "/api/v1/templates/{id}",
        "",
        Action::TemplateRead,
        Kind::Template,
    ),
    (
        "PUT",
        "/api/v1/templates/{id}",
        r#"{"name":"R","metadata":[{"name":"Serial","type":"text"}]}"#,
        Action::TemplateManage,
        Kind::Template,
    ),
    (
        "PUT",
        "/api/v1/templates/{id}/dashboard",
        r#"{"widgets":[]}"#,
        Action::TemplateManage,
        Kind::Template,
    ),
    (
        "GET",
        "/api/v1/users/{id}",
        "",
        Action::UserRead,
        Kind::User,
    ),
    (
        "GET",
        "/api/v1/users/{id}/tags",
        "",
        Action::UserRead,
        Kind::User,
    ),
    (
        "PUT",
        "/api/v1/users/{id}/tags",
        r#"["x"]"#,
        Action::UserManage,
        Kind::User,
    ),
    (
        "POST",
        "/api/v1/users/{id}/password-reset",
        "{}",
        Action::UserManage,
        Kind::User,
    ),
    (
        "POST",
        "/api/v1/users/{id}/transfer",
        r#"{"org_id":{a}}"#,
        Action::UserTransfer,
        Kind::User,
    ),
    (
        "DELETE",
        "/api/v1/invitations/{id}",
        "",
        Action::UserInvite,
        Kind::Invitation,
    ),
    (
        "GET",
        "/api/v1/devices/{id}",
        "",
        Action::DeviceRead,
        Kind::Device,
    ),
    (
        "GET",
        "/api/v1/devices/{id}/status",
        "",
        Action::DeviceRead,
        Kind::Device,
    ),
    (
        "GET",
        "/api/v1/devices/{id}/events",
        "",
        Action::DeviceRead,
        Kind::Device,
    ),
    (
        "GET",
        "/api/v1/devices/{id}/properties",
        "",
        Action::DeviceRead,
        Kind::Device,
    ),
    (
        "GET",
        "/api/v1/devices/{id}/tags",
        "",
        Action::DeviceRead,
        Kind::Device,
    ),
    (
        "PUT",
        "/api/v1/devices/{id}/tags",
        r#"["x"]"#,
        Action::DeviceManage,
        Kind::Device,
    ),
    (
        "POST",
        "/api/v1/devices/{id}/token",
        "{}",
        Action::DeviceManage,
        Kind::Device,
    ),
    (
        "POST",
        "/api/v1/devices/{id}/transfer",
        r#"{"org_id":{a},"template_id":"{template_a}"}"#,
        Action::DeviceTransfer,
        Kind::Device,
    ),
    (
        "DELETE",
        "/api/v1/devices/{id}",
        "",
        Action::DeviceManage,
        Kind::Device,
    ),
    (
        "POST",
        "/api/v1/provisioning",
        r#"{"template_id":"{template}","org_id":{org}}"#,
        Action::DeviceCreate,
        Kind::Org,
    ),
    (
        "POST",
        "/api/v1/devices/static",
        r#"{"template_id":"{template}","count":1,"org_id":{org}}"#,
        Action::DeviceBatchCreate,
        Kind::Org,
    ),
    (
        "POST",
        "/api/v1/webhooks",
        r#"{"name":"N","url":"http://127.0.0.1:9/hook","org_id":{org}}"#,
        Action::NotificationManage,
        Kind::Org,
    ),
    (
        "POST",
        "/api/v1/webhooks/{id}/ping",
        "",
        Action::NotificationManage,
        Kind::Webhook,
    ),
    (
        "DELETE",
        "/api/v1/webhooks/{id}",
        "",
        Action::NotificationManage,
        Kind::Webhook,
    ),
    (
        "POST",
        "/api/v1/automations",
        AUTOMATION_BODY,
        Action::AutomationManage,
        Kind::Org,
    ),
    (
        "GET",
        "/api/v1/automations/{id}",
        "",
        Action::AutomationRead,
        Kind::Automation,
    ),
    (
        "PUT",
        "/api/v1/automations/{id}",
        r#"{"name":"R","trigger":{"type":"schedule","at":"08:00","time_zone":"UTC"},"actions":[{"type":"notify","subject":"s"}]}"#,
        Action::AutomationManage,
        Kind::Automation,
    ),
    (
        "DELETE",
        "/api/v1/automations/{id}",
        "",
        Action::AutomationManage,
        Kind::Automation,
    ),
];

#[tokio::test]
async fn every_endpoint_role_and_organization_follows_the_rules_table() {
    let server = TestServer::start().await;
    let w = world(&server).await;
    let mut checked = 0;
    let mut n = 0;
    for (role, caller_id, token) in &w.callers {
        let caller = Principal {
            user_id: *caller_id,
            org_id: w.org_a,
            email: String::new(),
            role: *role,
            scopes: None,
        };
        for &(method, path, body, action, kind) in ENDPOINTS {
            for place in PLACES {
                n += 1;
                // Users and devices have owners; other kinds only have organizations.
                if place == Place::Mine && !matches!(kind, Kind::Device | Kind::User) {
                    continue;
                }
                // Transferring oneself is refused for its own reason.
                if place == Place::Mine && action == Action::UserTransfer {
                    continue;
                }
                let id = match kind {
                    Kind::Org => w.org(place).to_string(),
                    Kind::Template => w.template(place).to_owned(),
                    Kind::Device => device_at(&server, &w, &caller, place).await.to_string(),
                    Kind::User => user_at(&server, &w, &caller, place, n).await.to_string(),
                    Kind::Invitation => {
                        let new = crate::control::NewInvitation {
                            email: format!("inv{n}@m.example"),
                            role: Role::User,
                            org_id: None,
                        };
                        server
                            .control
                            .create_invitation(w.org(place), 1, &new)
                            .await
                            .unwrap()
                            .invitation
                            .id
                            .to_string()
                    }
                    Kind::Webhook => {
                        let new = crate::control::NewWebhook {
                            name: format!("hook{n}"),
                            url: "http://127.0.0.1:9/hook".into(),
                            channels: None,
                            org_id: None,
                        };
                        server
                            .control
                            .create_webhook(w.org(place), 1, &new)
                            .await
                            .unwrap()
                            .id
                            .to_string()
                    }
                    Kind::Automation => {
                        let body = AUTOMATION_BODY.replace("{org}", &w.org(place).to_string());
                        let new: crate::control::NewAutomation =
                            serde_json::from_str(&body).unwrap();
                        server
                            .control
                            .create_automation(w.org(place), 1, &new)
                            .await
                            .unwrap()
                            .id
                            .to_string()
                    }
                };
                let path = path.replace("{id}", &id);
                let body = body
                    .replace("{org}", &w.org(place).to_string())
                    .replace("{template}", w.template(place))
                    .replace("{template_a}", &w.templates[0])
                    .replace("{a}", &w.org_a.to_string())
                    .replace("{email}", &format!("new{n}@m.example"));
                let body = (!body.is_empty()).then_some(body.as_str());
                let reply = server.call(method, &path, Some(token), body).await;
                // Transfers also need the action on the destination (A), covered by `Mine`/`OwnOrg`.
                let allowed = covers(*role, action, place)
                    && (!matches!(action, Action::DeviceTransfer | Action::UserTransfer)
                        || covers(*role, action, Place::OwnOrg));
                let case = format!(
                    "{} {method} {path} {body:?} at {place:?}: {} {}",
                    role.as_str(),
                    reply.status,
                    reply.body
                );
                if allowed {
                    assert!(
                        (200..300).contains(&reply.status),
                        "allowed but refused: {case}"
                    );
                } else {
                    let expected = if covers(*role, read_action(action), place) {
                        403
                    } else {
                        404
                    };
                    assert_eq!(reply.status, expected, "expected {expected}: {case}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 200, "{checked} cases");
}

/// Lists show exactly what the read scope covers.
#[tokio::test]
async fn lists_follow_the_rules_table() {
    let server = TestServer::start().await;
    let w = world(&server).await;
    for (role, caller_id, token) in &w.callers {
        let caller = Principal {
            user_id: *caller_id,
            org_id: w.org_a,
            email: String::new(),
            role: *role,
            scopes: None,
        };
        let mut expected = Vec::new();
        for place in PLACES {
            let id = device_at(&server, &w, &caller, place).await;
            if covers(*role, Action::DeviceRead, place) {
                expected.push(Value::from(id));
            }
        }
        let listed: Vec<Value> = server
            .get("/api/v1/devices", token)
            .await
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].clone())
            // Devices of earlier rounds (other callers) have lower ids.
            .filter(|id| created_this_round(id, &expected))
            .collect();
        assert_eq!(listed, expected, "{}", role.as_str());

        let orgs = server.get("/api/v1/organizations", token).await.body;
        let org_ids: Vec<u64> = orgs
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_u64().unwrap())
            .collect();
        let mut want = vec![u64::from(w.org_a)];
        if covers(*role, Action::OrganizationRead, Place::SubOrg) {
            want.push(u64::from(w.org_a1));
        }
        assert_eq!(org_ids, want, "{}", role.as_str());

        let templates = server.get("/api/v1/templates", token).await.body;
        let template_ids: Vec<&str> = templates
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap())
            .collect();
        let mut want = vec![w.templates[0].as_str()];
        if covers(*role, Action::TemplateRead, Place::SubOrg) {
            want.push(w.templates[1].as_str());
        }
        assert_eq!(template_ids, want, "{}", role.as_str());
    }
}

/// Whether `id` is not older than the first device of this round (every role reads its own).
fn created_this_round(id: &Value, expected: &[Value]) -> bool {
    let first = expected.iter().filter_map(Value::as_u64).min().unwrap_or(0);
    id.as_u64().is_some_and(|id| id >= first)
}

//! The rules table: which role may do which action on what (see `docs/permissions.md`, which a
//! unit test keeps identical to [`RULES`]). Handlers ask [`ControlPlane::authorize`] before every
//! action on a resource and [`scope_of`] for lists.

use serde::Serialize;

use super::ControlPlane;
use super::auth::{Principal, Role};
use super::devices::DeviceRecord;
use super::error::{ControlError, Result};

/// An action of the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Action {
    OrganizationRead,
    OrganizationManage,
    UserRead,
    UserManage,
    UserInvite,
    UserTransfer,
    TemplateRead,
    TemplateManage,
    DeviceRead,
    DeviceCreate,
    DeviceManage,
    DeviceTransfer,
    DeviceClaim,
    DeviceBatchCreate,
    TokenManage,
    AuditRead,
    NotificationRead,
    NotificationManage,
    AutomationRead,
    AutomationManage,
}

/// How far an action reaches for a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Scope {
    /// Never.
    Never,
    /// Only what the caller owns.
    Own,
    /// The caller's organization.
    Org,
    /// The caller's organization and everything below it.
    Subtree,
}

impl Scope {
    /// Name in `docs/permissions.md`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "-",
            Self::Own => "own",
            Self::Org => "org",
            Self::Subtree => "subtree",
        }
    }
}

/// One row of the rules table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub action: Action,
    pub name: &'static str,
    pub admin: Scope,
    pub staff: Scope,
    pub user: Scope,
}

const fn rule(action: Action, name: &'static str, admin: Scope, staff: Scope, user: Scope) -> Rule {
    Rule {
        action,
        name,
        admin,
        staff,
        user,
    }
}

use Scope::{Never, Org, Own, Subtree};

/// The rules table, row for row the one in `docs/permissions.md`.
pub static RULES: [Rule; 20] = [
    rule(
        Action::OrganizationRead,
        "organization.read",
        Subtree,
        Subtree,
        Org,
    ),
    rule(
        Action::OrganizationManage,
        "organization.manage",
        Subtree,
        Never,
        Never,
    ),
    rule(Action::UserRead, "user.read", Subtree, Org, Own),
    rule(Action::UserManage, "user.manage", Subtree, Never, Never),
    rule(Action::UserInvite, "user.invite", Subtree, Org, Never),
    rule(Action::UserTransfer, "user.transfer", Subtree, Never, Never),
    rule(Action::TemplateRead, "template.read", Subtree, Subtree, Org),
    rule(
        Action::TemplateManage,
        "template.manage",
        Subtree,
        Org,
        Never,
    ),
    rule(Action::DeviceRead, "device.read", Subtree, Subtree, Org),
    rule(Action::DeviceCreate, "device.create", Subtree, Org, Org),
    rule(Action::DeviceManage, "device.manage", Subtree, Subtree, Own),
    rule(
        Action::DeviceTransfer,
        "device.transfer",
        Subtree,
        Never,
        Never,
    ),
    rule(Action::DeviceClaim, "device.claim", Org, Org, Org),
    rule(
        Action::DeviceBatchCreate,
        "device.batch_create",
        Subtree,
        Org,
        Never,
    ),
    rule(Action::TokenManage, "token.manage", Own, Own, Own),
    rule(Action::AuditRead, "audit.read", Subtree, Org, Never),
    rule(
        Action::NotificationRead,
        "notification.read",
        Subtree,
        Org,
        Never,
    ),
    rule(
        Action::NotificationManage,
        "notification.manage",
        Subtree,
        Never,
        Never,
    ),
    rule(
        Action::AutomationRead,
        "automation.read",
        Subtree,
        Subtree,
        Never,
    ),
    rule(
        Action::AutomationManage,
        "automation.manage",
        Subtree,
        Org,
        Never,
    ),
];

impl Action {
    /// Its row of [`RULES`].
    pub fn rule(self) -> &'static Rule {
        RULES.iter().find(|r| r.action == self).unwrap_or(&RULES[0])
    }

    /// The action named `name` (`"device.read"`).
    pub fn from_name(name: &str) -> Option<Action> {
        RULES.iter().find(|r| r.name == name).map(|r| r.action)
    }

    /// The action that decides whether a resource is visible at all (404 versus 403).
    fn read_action(self) -> Action {
        match self {
            Self::OrganizationRead | Self::OrganizationManage => Self::OrganizationRead,
            Self::UserRead | Self::UserManage | Self::UserInvite | Self::UserTransfer => {
                Self::UserRead
            }
            Self::TemplateRead | Self::TemplateManage => Self::TemplateRead,
            Self::DeviceRead
            | Self::DeviceCreate
            | Self::DeviceManage
            | Self::DeviceTransfer
            | Self::DeviceClaim
            | Self::DeviceBatchCreate => Self::DeviceRead,
            Self::TokenManage => Self::TokenManage,
            Self::AuditRead => Self::AuditRead,
            Self::NotificationRead | Self::NotificationManage => Self::NotificationRead,
            Self::AutomationRead | Self::AutomationManage => Self::AutomationRead,
        }
    }
}

/// Scope of `action` for the caller's role (and API token scopes, if any).
pub fn scope_of(principal: &Principal, action: Action) -> Scope {
    if let Some(scopes) = &principal.scopes
        && !scopes.contains(&action)
    {
        return Never;
    }
    let rule = action.rule();
    match principal.role {
        Role::Admin => rule.admin,
        Role::Staff => rule.staff,
        Role::User => rule.user,
    }
}

/// What an action is done on: a resource's organization and, when it has one, its owner.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub org_id: u32,
    /// Owning user (devices: owner; users: the user itself; tokens: their user).
    pub owner_user_id: Option<u32>,
}

impl ControlPlane {
    /// Whether `scope` of the caller covers `target`.
    pub async fn scope_covers(
        &self,
        principal: &Principal,
        scope: Scope,
        target: Target,
    ) -> Result<bool> {
        Ok(match scope {
            Never => false,
            Own => {
                target.org_id == principal.org_id && target.owner_user_id == Some(principal.user_id)
            }
            Org => target.org_id == principal.org_id,
            Subtree => self.org_is_within(principal.org_id, target.org_id).await?,
        })
    }

    /// Checks that the caller may do `action` on `target`: `Ok` if allowed, 404 when the caller
    /// may not even read the target, 403 when it may read it but not do the action.
    pub async fn authorize(
        &self,
        principal: &Principal,
        action: Action,
        target: Target,
        what: &str,
    ) -> Result<()> {
        let scope = scope_of(principal, action);
        if self.scope_covers(principal, scope, target).await? {
            return Ok(());
        }
        let read = action.read_action();
        let readable = read != action
            && self
                .scope_covers(principal, scope_of(principal, read), target)
                .await?;
        if readable {
            Err(forbidden(principal, action))
        } else {
            Err(ControlError::not_found(format!("{what} not found")))
        }
    }

    /// Device `device_id` after checking that the caller may do `action` on it: 404 when the
    /// caller may not even read it (so ids of other tenants' devices leak nothing), 403 when it
    /// may read it but not do the action. Devices of sub-organizations are covered by the
    /// `subtree` scopes.
    pub async fn authorized_device(
        &self,
        principal: &Principal,
        device_id: u32,
        action: Action,
    ) -> Result<DeviceRecord> {
        let what = format!("device {device_id}");
        let device = self
            .device_by_id(device_id)
            .await?
            .ok_or_else(|| ControlError::not_found(format!("{what} not found")))?;
        let target = Target {
            org_id: device.org_id,
            owner_user_id: device.owner_user_id,
        };
        self.authorize(principal, action, target, &what).await?;
        Ok(device)
    }

    /// The organizations in which the caller may do `action` on something (own org for `own`
    /// and `org`, the subtree for `subtree`).
    /// 403 when the role never has the action.
    pub async fn orgs_in_scope(&self, principal: &Principal, action: Action) -> Result<Vec<u32>> {
        Ok(match scope_of(principal, action) {
            Never => return Err(forbidden(principal, action)),
            Own | Org => vec![principal.org_id],
            Subtree => self
                .organization_subtree(principal.org_id)
                .await?
                .into_iter()
                .map(|o| o.id)
                .collect(),
        })
    }
}

/// 403 for an action the caller's role never has.
pub fn require(principal: &Principal, action: Action) -> Result<Scope> {
    match scope_of(principal, action) {
        Never => Err(forbidden(principal, action)),
        scope => Ok(scope),
    }
}

fn forbidden(principal: &Principal, action: Action) -> ControlError {
    ControlError::forbidden(format!(
        "role {} may not do {} here (see docs/permissions.md)",
        principal.role.as_str(),
        action.rule().name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table between the markers of `docs/permissions.md`, as (name, admin, staff, user).
    fn documented() -> Vec<[String; 4]> {
        let doc = include_str!("../../../docs/permissions.md");
        let start = doc.find("<!-- permissions-table -->").unwrap();
        let end = doc.find("<!-- /permissions-table -->").unwrap();
        doc[start..end]
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| action"))
            .map(|l| {
                let cells: Vec<String> = l.split('|').map(|c| c.trim().to_owned()).collect();
                [
                    cells[1].clone(),
                    cells[2].clone(),
                    cells[3].clone(),
                    cells[4].clone(),
                ]
            })
            .collect()
    }

    #[test]
    fn code_table_matches_the_docs() {
        let code: Vec<[String; 4]> = RULES
            .iter()
            .map(|r| {
                [
                    r.name.to_owned(),
                    r.admin.as_str().to_owned(),
                    r.staff.as_str().to_owned(),
                    r.user.as_str().to_owned(),
                ]
            })
            .collect();
        assert_eq!(code, documented());
    }

    #[test]
    fn every_action_has_one_row() {
        for (i, a) in RULES.iter().enumerate() {
            assert_eq!(a.action.rule().name, a.name);
            assert!(RULES[i + 1..].iter().all(|b| b.action != a.action));
        }
    }

    #[test]
    fn staff_never_exceeds_admin_and_user_never_exceeds_staff() {
        for r in RULES {
            assert!(r.staff <= r.admin, "{}", r.name);
            assert!(r.user <= r.staff, "{}", r.name);
        }
    }
}

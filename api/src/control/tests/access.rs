//! Organization tree, roles from the rules table, scoped API tokens, invitations, password
//! reset, tags and transfers.

use serde_json::json;

use super::*;

/// Root org 1 (bootstrap admin), a sub-organization `branch` with an admin, a staff member and
/// a user, and one template + device in each organization.
struct Tree {
    root_admin: String,
    branch: u32,
    branch_admin: String,
    branch_staff: String,
    branch_user: String,
    branch_user_id: u32,
    root_template: String,
    branch_template: String,
    root_device: u32,
    branch_device: u32,
}

async fn tree(server: &TestServer) -> Tree {
    let root_admin = server.login(EMAIL, PASSWORD).await;
    let reply = server
        .post(
            "/api/v1/organizations",
            &root_admin,
            json!({"name": "Branch"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let branch = u32::try_from(reply.body["id"].as_u64().unwrap()).unwrap();
    let mut tokens = Vec::new();
    let mut user_ids = Vec::new();
    for (email, role) in [
        ("badmin@example.com", "admin"),
        ("bstaff@example.com", "staff"),
        ("buser@example.com", "user"),
    ] {
        let reply = server
            .post(
                "/api/v1/users",
                &root_admin,
                json!({"email": email, "password": "long-enough", "role": role, "org_id": branch}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        user_ids.push(u32::try_from(reply.body["id"].as_u64().unwrap()).unwrap());
        tokens.push(server.login(email, "long-enough").await);
    }
    let root_template = server.template(&root_admin).await;
    let branch_template = server.template(&tokens[0]).await;
    let (root_device, _) = server.device(&root_admin, &root_template).await;
    let (branch_device, _) = server.device(&tokens[0], &branch_template).await;
    let branch_user = tokens.pop().unwrap();
    let branch_staff = tokens.pop().unwrap();
    let branch_admin = tokens.pop().unwrap();
    Tree {
        root_admin,
        branch,
        branch_admin,
        branch_staff,
        branch_user,
        branch_user_id: user_ids[2],
        root_template,
        branch_template,
        root_device,
        branch_device,
    }
}

fn ids(reply: &Reply) -> Vec<u64> {
    reply
        .body
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {}", reply.body))
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn parents_see_sub_organizations_devices() {
    let server = TestServer::start().await;
    let t = tree(&server).await;
    let all = [u64::from(t.root_device), u64::from(t.branch_device)];
    assert_eq!(
        ids(&server.get("/api/v1/devices", &t.root_admin).await),
        all
    );
    for token in [&t.branch_admin, &t.branch_staff, &t.branch_user] {
        assert_eq!(
            ids(&server.get("/api/v1/devices", token).await),
            [u64::from(t.branch_device)]
        );
        assert_error(
            &server
                .get(&format!("/api/v1/devices/{}", t.root_device), token)
                .await,
            404,
            "not_found",
        );
    }
    let reply = server
        .get(
            &format!("/api/v1/devices/{}", t.branch_device),
            &t.root_admin,
        )
        .await;
    assert_eq!(reply.status, 200);
    let templates = server.get("/api/v1/templates", &t.root_admin).await;
    assert_eq!(templates.body.as_array().unwrap().len(), 2);
    let reply = server
        .get(
            &format!("/api/v1/templates/{}", t.root_template),
            &t.branch_staff,
        )
        .await;
    assert_error(&reply, 404, "not_found");
    // A user reads the branch device but may not manage a device it does not own: 403.
    let path = format!("/api/v1/devices/{}/token", t.branch_device);
    assert_error(
        &server.post(&path, &t.branch_user, json!({})).await,
        403,
        "forbidden",
    );
    // Staff manage devices of their organization.
    let reply = server.post(&path, &t.branch_staff, json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The user owns a device it creates, and can rotate and delete it.
    let (own, old_token) = server.device(&t.branch_user, &t.branch_template).await;
    let reply = server
        .post(
            &format!("/api/v1/devices/{own}/token"),
            &t.branch_user,
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_ne!(reply.body["token"].as_str().unwrap(), old_token);
    assert!(
        server
            .control
            .device_by_token(&old_token)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(reply.body["owner_user_id"], t.branch_user_id);
    let reply = server
        .call(
            "DELETE",
            &format!("/api/v1/devices/{own}"),
            Some(&t.branch_user),
            None,
        )
        .await;
    assert_eq!(reply.status, 204);
    // Staff create templates in their own organization only; users not at all.
    let reply = server
        .post(
            "/api/v1/templates",
            &t.branch_staff,
            json!({"name": "X", "org_id": 1}),
        )
        .await;
    assert_error(&reply, 404, "not_found");
    let reply = server
        .post("/api/v1/templates", &t.branch_user, json!({"name": "X"}))
        .await;
    assert_error(&reply, 403, "forbidden");
    // The root admin creates a device directly in the branch.
    let reply = server
        .post(
            "/api/v1/devices",
            &t.root_admin,
            json!({"name": "Remote", "template_id": t.branch_template, "org_id": t.branch}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["org_id"], t.branch);
    // Users see only themselves in the user list.
    let users = server.get("/api/v1/users", &t.branch_user).await;
    assert_eq!(ids(&users), [u64::from(t.branch_user_id)]);
}

#[tokio::test]
async fn tags_and_transfers() {
    let server = TestServer::start().await;
    let t = tree(&server).await;
    let path = format!("/api/v1/devices/{}/tags", t.branch_device);
    let reply = server
        .call(
            "PUT",
            &path,
            Some(&t.branch_staff),
            Some(&json!(["floor-2", " beta ", "beta"]).to_string()),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, json!(["beta", "floor-2"]));
    assert_eq!(
        server.get(&path, &t.branch_user).await.body,
        json!(["beta", "floor-2"])
    );
    let reply = server
        .call("PUT", &path, Some(&t.branch_user), Some("[\"x\"]"))
        .await;
    assert_error(&reply, 403, "forbidden");
    let reply = server
        .call("PUT", &path, Some(&t.branch_staff), Some("[\"a/b\"]"))
        .await;
    assert_error(&reply, 400, "validation_failed");
    let tagged = server.get("/api/v1/devices?tag=beta", &t.root_admin).await;
    assert_eq!(ids(&tagged), [u64::from(t.branch_device)]);
    assert_eq!(
        server
            .control
            .device_ids_with_tag(t.branch, "beta")
            .await
            .unwrap(),
        [t.branch_device]
    );

    let user_path = format!("/api/v1/users/{}/tags", t.branch_user_id);
    let reply = server
        .call(
            "PUT",
            &user_path,
            Some(&t.branch_admin),
            Some("[\"night-shift\"]"),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_error(
        &server
            .call("PUT", &user_path, Some(&t.branch_staff), Some("[]"))
            .await,
        403,
        "forbidden",
    );
    assert_eq!(
        server.get(&user_path, &t.branch_user).await.body,
        json!(["night-shift"])
    );

    // Device transfer: root admin moves the root device into the branch; its template is
    // the root's, so a branch template must be named.
    let transfer = format!("/api/v1/devices/{}/transfer", t.root_device);
    let reply = server
        .post(&transfer, &t.root_admin, json!({"org_id": t.branch}))
        .await;
    assert_error(&reply, 400, "validation_failed");
    let reply = server
        .post(
            &transfer,
            &t.root_admin,
            json!({"org_id": t.branch, "template_id": t.branch_template}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["org_id"], t.branch);
    assert!(reply.body["owner_user_id"].is_null());
    // The branch admin may not move it back up, and staff may not transfer at all.
    let reply = server
        .post(
            &transfer,
            &t.branch_admin,
            json!({"org_id": 1, "template_id": t.root_template}),
        )
        .await;
    assert_error(&reply, 404, "not_found");
    let reply = server
        .post(&transfer, &t.branch_staff, json!({"org_id": t.branch}))
        .await;
    assert_error(&reply, 403, "forbidden");

    // User transfer: the root admin moves the branch user to the root organization.
    let reply = server
        .post(
            &format!("/api/v1/users/{}/transfer", t.branch_user_id),
            &t.root_admin,
            json!({"org_id": 1}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["org_id"], 1);
    // Now in the root organization, which has no device left after the transfer above.
    assert!(ids(&server.get("/api/v1/devices", &t.branch_user).await).is_empty());
}

#[tokio::test]
async fn scoped_api_tokens() {
    let server = TestServer::start().await;
    let t = tree(&server).await;
    let reply = server
        .post(
            "/api/v1/auth/tokens",
            &t.branch_staff,
            json!({"name": "reader", "scopes": ["device.read"]}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["scopes"], json!(["device.read"]));
    let reader = reply.body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        ids(&server.get("/api/v1/devices", &reader).await),
        [u64::from(t.branch_device)]
    );
    assert_error(
        &server.get("/api/v1/templates", &reader).await,
        403,
        "forbidden",
    );
    let reply = server
        .post(
            &format!("/api/v1/devices/{}/token", t.branch_device),
            &reader,
            json!({}),
        )
        .await;
    assert_error(&reply, 403, "forbidden");
    // A scoped token cannot mint tokens (token.manage is not in its scopes).
    let reply = server
        .post("/api/v1/auth/tokens", &reader, json!({"name": "x"}))
        .await;
    assert_error(&reply, 403, "forbidden");
    let listed = server.get("/api/v1/auth/tokens", &t.branch_staff).await;
    assert_eq!(listed.body[0]["scopes"], json!(["device.read"]));
    // Scopes outside the role, or unknown, are refused.
    for scopes in [json!(["user.manage"]), json!(["device.fly"]), json!([])] {
        let reply = server
            .post(
                "/api/v1/auth/tokens",
                &t.branch_staff,
                json!({"name": "x", "scopes": scopes}),
            )
            .await;
        assert_error(&reply, 400, "validation_failed");
    }
}

#[tokio::test]
async fn invitations_and_password_reset() {
    let server = TestServer::start().await;
    let t = tree(&server).await;
    // Staff invite users, not staff.
    let reply = server
        .post(
            "/api/v1/invitations",
            &t.branch_staff,
            json!({"email": "new@example.com", "role": "staff"}),
        )
        .await;
    assert_error(&reply, 403, "forbidden");
    let reply = server
        .post(
            "/api/v1/invitations",
            &t.branch_staff,
            json!({"email": "new@example.com", "role": "user"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let invite = reply.body["token"].as_str().unwrap().to_owned();
    assert_eq!(reply.body["org_id"], t.branch);
    assert_error(
        &server.get("/api/v1/invitations", &t.branch_user).await,
        403,
        "forbidden",
    );
    let open = server.get("/api/v1/invitations", &t.root_admin).await;
    assert_eq!(open.body.as_array().unwrap().len(), 1, "{}", open.body);
    assert!(open.body[0].get("token").is_none());
    let accept = json!({"token": invite, "password": "new-password", "name": "New"});
    let reply = server
        .call(
            "POST",
            "/api/v1/invitations/accept",
            None,
            Some(&accept.to_string()),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["role"], "user");
    assert_eq!(reply.body["org_id"], t.branch);
    let new_user_id = reply.body["id"].as_u64().unwrap();
    let reply = server
        .call(
            "POST",
            "/api/v1/invitations/accept",
            None,
            Some(&accept.to_string()),
        )
        .await;
    assert_error(&reply, 404, "not_found");
    let session = server.login("new@example.com", "new-password").await;

    // Revoking an invitation.
    let reply = server
        .post(
            "/api/v1/invitations",
            &t.branch_admin,
            json!({"email": "other@example.com", "role": "staff"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.body["id"].as_u64().unwrap();
    let path = format!("/api/v1/invitations/{id}");
    assert_eq!(
        server
            .call("DELETE", &path, Some(&t.branch_admin), None)
            .await
            .status,
        204
    );
    assert_error(
        &server
            .call("DELETE", &path, Some(&t.branch_admin), None)
            .await,
        404,
        "not_found",
    );

    // Password reset issued by an admin; the old session ends, the token works once.
    let path = format!("/api/v1/users/{new_user_id}/password-reset");
    assert_error(
        &server.post(&path, &t.branch_staff, json!({})).await,
        403,
        "forbidden",
    );
    let reply = server.post(&path, &t.branch_admin, json!({})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reset = reply.body["token"].as_str().unwrap().to_owned();
    let body = json!({"token": reset, "password": "short"}).to_string();
    let reply = server
        .call("POST", "/api/v1/auth/password-reset", None, Some(&body))
        .await;
    assert_error(&reply, 400, "validation_failed");
    let body = json!({"token": reset, "password": "brand-new-password"}).to_string();
    let reply = server
        .call("POST", "/api/v1/auth/password-reset", None, Some(&body))
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert_error(
        &server.get("/api/v1/auth/me", &session).await,
        401,
        "unauthorized",
    );
    server.login("new@example.com", "brand-new-password").await;
    let reply = server
        .call("POST", "/api/v1/auth/password-reset", None, Some(&body))
        .await;
    assert_error(&reply, 404, "not_found");
}

//! Organization tree, user management and role checks.

use serde_json::json;

use super::*;

#[tokio::test]
async fn users_cannot_create_templates() {
    let server = TestServer::start().await;
    server
        .control
        .create_user(
            1,
            &new_user("user@example.com", "user-password", Role::User),
        )
        .await
        .unwrap();
    let token = server.login("user@example.com", "user-password").await;
    let reply = server
        .post(
            "/api/v1/templates",
            &token,
            json!({"name": "T", "datastreams": []}),
        )
        .await;
    assert_error(&reply, 403, "forbidden");
    let duplicate = server
        .control
        .create_user(
            1,
            &new_user("USER@example.com", "other-password", Role::User),
        )
        .await;
    assert!(matches!(duplicate, Err(ControlError::Conflict(_))));
}

#[tokio::test]
async fn admins_manage_organizations_and_users() {
    let server = TestServer::start().await;
    let admin = server.login(EMAIL, PASSWORD).await;
    let reply = server
        .post("/api/v1/organizations", &admin, json!({"name": "Branch"}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let branch = reply.body["id"].as_u64().unwrap();
    assert_eq!(reply.body["parent_id"], 1);
    let reply = server
        .post(
            "/api/v1/organizations",
            &admin,
            json!({"name": "Leaf", "parent_id": branch}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let leaf = reply.body["id"].as_u64().unwrap();
    let orgs = server.get("/api/v1/organizations", &admin).await.body;
    assert_eq!(orgs.as_array().unwrap().len(), 3);

    // A user of the branch, created by the root admin.
    let reply = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"email": "branch@example.com", "password": "branch-password", "role": "admin", "org_id": branch}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let branch_user = reply.body["id"].as_u64().unwrap();
    assert_eq!(reply.body["org_id"], branch);
    assert_eq!(
        server
            .get(&format!("/api/v1/users/{branch_user}"), &admin)
            .await
            .status,
        200
    );
    // Duplicate e-mail, short password, unknown role.
    let reply = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"email": "BRANCH@example.com", "password": "long-enough", "role": "user"}),
        )
        .await;
    assert_error(&reply, 409, "conflict");
    let reply = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"email": "s@example.com", "password": "short", "role": "user"}),
        )
        .await;
    assert_error(&reply, 400, "validation_failed");
    let reply = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"email": "s@example.com", "password": "long-enough", "role": "root"}),
        )
        .await;
    assert_error(&reply, 400, "bad_request");

    // The branch admin sees its subtree, not the root, and cannot reach up.
    let branch_admin = server.login("branch@example.com", "branch-password").await;
    let orgs = server
        .get("/api/v1/organizations", &branch_admin)
        .await
        .body;
    let ids: Vec<u64> = orgs
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [branch, leaf]);
    assert_error(
        &server.get("/api/v1/organizations/1", &branch_admin).await,
        404,
        "not_found",
    );
    let reply = server
        .post(
            "/api/v1/organizations",
            &branch_admin,
            json!({"name": "X", "parent_id": 1}),
        )
        .await;
    assert_error(&reply, 404, "not_found");
    let reply = server
        .post("/api/v1/users", &branch_admin, json!({"email": "x@example.com", "password": "long-enough", "role": "user", "org_id": 1}))
        .await;
    assert_error(&reply, 404, "not_found");
    assert_error(
        &server.get("/api/v1/users/1", &branch_admin).await,
        404,
        "not_found",
    );
    let users = server.get("/api/v1/users", &branch_admin).await.body;
    assert_eq!(users.as_array().unwrap().len(), 1);

    // Non-admins cannot manage users or organizations.
    let reply = server
        .post(
            "/api/v1/users",
            &branch_admin,
            json!({"email": "u@example.com", "password": "long-enough", "role": "user"}),
        )
        .await;
    assert_eq!(reply.status, 201);
    let user = server.login("u@example.com", "long-enough").await;
    // A user sees only itself in the user list (user.read: own).
    let users = server.get("/api/v1/users", &user).await.body;
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["email"], "u@example.com");
    assert_error(
        &server
            .post("/api/v1/organizations", &user, json!({"name": "Y"}))
            .await,
        403,
        "forbidden",
    );
    let orgs = server.get("/api/v1/organizations", &user).await.body;
    assert_eq!(orgs.as_array().unwrap().len(), 1);
    assert_eq!(orgs[0]["id"], branch);
}

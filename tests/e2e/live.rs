//! `GET /api/v1/live`: values reach a WebSocket subscriber as they arrive,
//! filtered by device and pin, scoped to what the caller may read (its
//! organization and sub-organizations), authenticated by header or subprotocol.

use std::time::Duration;

use futures::StreamExt;
use pinhouse_protocol::{command, status};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::device::RawDevice;
use crate::server::Server;

async fn next_json<S>(ws: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a live message within 10 s")
            .expect("stream open")
            .expect("no websocket error");
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_values_stream_to_authenticated_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let bearer = server.admin_token().await.unwrap();
    let (device, token) = server.create_device(&bearer, "Live").await.unwrap();
    let device_id = device["id"].as_u64().unwrap();
    let url = format!("ws://{}/api/v1/live?device={device_id}&pin=V2", server.http);

    // Without a token: refused before the upgrade.
    let err = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // A device of another id: 404.
    let mut other = format!("ws://{}/api/v1/live?device=999999", server.http)
        .into_client_request()
        .unwrap();
    other
        .headers_mut()
        .insert("authorization", format!("Bearer {bearer}").parse().unwrap());
    let err = tokio_tungstenite::connect_async(other).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");

    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {bearer}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    let mut dev = RawDevice::connect(server.hardware).await.unwrap();
    assert_eq!(dev.login(&token).await.unwrap(), status::OK);
    // V1 is filtered out; V2 arrives, as a number and as text.
    dev.send(command::HARDWARE, &[b"vw", b"1", b"1.5"])
        .await
        .unwrap();
    dev.send(command::HARDWARE, &[b"vw", b"2", b"42"])
        .await
        .unwrap();
    let first = next_json(&mut ws).await;
    assert_eq!(first["device_id"].as_u64(), Some(device_id));
    assert_eq!(first["pin"], "V2");
    assert_eq!(first["value"].as_f64(), Some(42.0));
    assert!(first["ts"].as_i64().unwrap() > 0);

    // A write through the HTTP API reaches the subscriber too.
    let (code, _) = server
        .get_text(&format!("/external/api/update?token={token}&V2=open"))
        .await
        .unwrap();
    assert_eq!(code, 200);
    let second = next_json(&mut ws).await;
    assert_eq!(second["pin"], "V2");
    assert_eq!(second["text"], "open");
}

/// Opens `/api/v1/live` with the bearer token as a `bearer.<token>` subprotocol, as a browser does.
async fn subscribe_as_browser(
    server: &Server,
    bearer: &str,
    query: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = format!("ws://{}/api/v1/live{query}", server.http)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("pinhouse.live, bearer.{bearer}").parse().unwrap(),
    );
    let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "pinhouse.live",
        "the server selects the live subprotocol"
    );
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_subprotocol_auth_and_organization_subtree() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let root = server.admin_token().await.unwrap();
    let (root_device, root_token) = server.create_device(&root, "Root device").await.unwrap();
    let (_, child) = server
        .other_org_admin(&root, "child-live@example.com")
        .await
        .unwrap();
    let (child_device, child_token) = server.create_device(&child, "Child device").await.unwrap();
    let root_id = root_device["id"].as_u64().unwrap();
    let child_id = child_device["id"].as_u64().unwrap();

    // A bad token in the subprotocol is refused before the upgrade; so is a device of the parent
    // organization for the child's admin.
    let mut bad = format!("ws://{}/api/v1/live", server.http)
        .into_client_request()
        .unwrap();
    bad.headers_mut().insert(
        "sec-websocket-protocol",
        "pinhouse.live, bearer.0000".parse().unwrap(),
    );
    let err = tokio_tungstenite::connect_async(bad).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let mut parents = format!("ws://{}/api/v1/live?device={root_id}", server.http)
        .into_client_request()
        .unwrap();
    parents.headers_mut().insert(
        "sec-websocket-protocol",
        format!("pinhouse.live, bearer.{child}").parse().unwrap(),
    );
    let err = tokio_tungstenite::connect_async(parents).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");

    // The root admin sees its own device and its sub-organization's; the child admin sees only
    // its own organization's (the root device writes first, so a leak would arrive first).
    let mut root_ws = subscribe_as_browser(&server, &root, "").await;
    let mut child_ws = subscribe_as_browser(&server, &child, "").await;
    let mut child_by_device =
        subscribe_as_browser(&server, &root, &format!("?device={child_id}")).await;
    for (token, value) in [(&root_token, "1"), (&child_token, "2")] {
        let mut dev = RawDevice::connect(server.hardware).await.unwrap();
        assert_eq!(dev.login(token).await.unwrap(), status::OK);
        dev.send(command::HARDWARE, &[b"vw", b"1", value.as_bytes()])
            .await
            .unwrap();
        // Wait for the value to be through before the next device writes.
        let seen = next_json(&mut root_ws).await;
        assert_eq!(seen["value"].as_f64(), Some(value.parse().unwrap()));
    }
    let seen = next_json(&mut child_ws).await;
    assert_eq!(seen["device_id"].as_u64(), Some(child_id), "{seen}");
    assert_eq!(seen["value"].as_f64(), Some(2.0));
    let seen = next_json(&mut child_by_device).await;
    assert_eq!(seen["device_id"].as_u64(), Some(child_id), "{seen}");
}

//! The web console in a real browser: headless Chromium driven over WebDriver (`chromedriver`,
//! Debian's `chromium-driver`, installed by `scripts/test`; client in `webdriver.rs`).
//!
//! One walk through the console as a user would: log in → create a template and a device → a
//! real Blynk device (Python `blynklib`) writes values → the dashboard shows them and the chart
//! shows their history → toggling the switch widget reaches the device over the Blynk protocol →
//! an SQL query shows the rows. Every page is saved as a screenshot under `docs/screenshots/`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::server::{ADMIN_EMAIL, ADMIN_PASSWORD, Server, free_port};
use crate::webdriver::Browser;

/// How long a page may take to show what the test waits for.
const WAIT: Duration = Duration::from_secs(30);

/// `chromedriver` on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Result<Driver> {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context(
                "starting chromedriver (Debian packages chromium and chromium-driver; \
                 scripts/test installs them)",
            )?;
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        let ready = crate::server::eventually(Duration::from_secs(20), || async {
            let resp = reqwest::get(&status).await.ok()?;
            resp.status().is_success().then_some(())
        })
        .await;
        ensure!(ready.is_some(), "chromedriver did not start on port {port}");
        Ok(Driver { child, url })
    }

    async fn browser(&self) -> Result<Browser> {
        Browser::open(
            &self.url,
            &[
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1280,1000",
                "--lang=en-GB",
                "--force-device-scale-factor=1",
            ],
        )
        .await
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots")
}

async fn screenshot(browser: &Browser, name: &str) -> Result<()> {
    // Let charts and fonts settle after the last DOM change.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = browser.screenshot().await?;
    ensure!(
        png.starts_with(b"\x89PNG"),
        "screenshot of {name} is not a PNG"
    );
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{name}.png")), png)?;
    Ok(())
}

/// Waits until `script` (a JS expression) is truthy; returns its value.
async fn until(browser: &Browser, what: &str, script: &str) -> Result<serde_json::Value> {
    let body = format!("return ({script}) || null;");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = browser.execute(&body).await?;
        if !value.is_null() && value != json!(false) {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            let text = browser
                .execute("return document.querySelector('main').innerText")
                .await
                .unwrap_or_default();
            bail!("timed out waiting for {what}; page shows:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// The next line of the device script's output that starts with `prefix` (blynklib prints its
/// banner on stdout too).
async fn line_starting(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    prefix: &str,
) -> Result<String> {
    while let Some(line) = lines.next_line().await? {
        if line.starts_with(prefix) {
            return Ok(line);
        }
    }
    bail!("the device script ended before printing {prefix:?}")
}

async fn heading(browser: &Browser) -> Result<String> {
    let h1 = browser.find("main h1").await?;
    browser.text(&h1).await
}

async fn fill(browser: &Browser, css: &str, text: &str) -> Result<()> {
    let input = browser.find(css).await?;
    browser.clear(&input).await?;
    browser.send_keys(&input, text).await?;
    Ok(())
}

/// Fills the last datastream row of the template editor.
async fn datastream(
    browser: &Browser,
    pin: &str,
    name: &str,
    kind: &str,
    min: &str,
    max: &str,
) -> Result<()> {
    let row = "fieldset tbody tr:last-child";
    fill(browser, &format!("{row} [name=pin]"), pin).await?;
    fill(browser, &format!("{row} [name=name]"), name).await?;
    let option = browser
        .find(&format!("{row} [name=type] option[value={kind}]"))
        .await?;
    browser.click(&option).await?;
    if !min.is_empty() {
        fill(browser, &format!("{row} [name=min]"), min).await?;
        fill(browser, &format!("{row} [name=max]"), max).await?;
    }
    Ok(())
}

async fn click_button(browser: &Browser, text: &str) -> Result<()> {
    let button = browser
        .find_xpath(&format!("//button[normalize-space()='{text}']"))
        .await
        .with_context(|| format!("button {text:?}"))?;
    browser.click(&button).await?;
    Ok(())
}

async fn walk(server: &Server, browser: &Browser) -> Result<()> {
    let base = server.url("");

    // Log in (an unauthenticated visit to / lands on the login page).
    browser.goto(&server.url("/")).await?;
    until(
        browser,
        "the login form",
        "location.pathname === '/login' && document.querySelector('input[type=email]')",
    )
    .await?;
    assert_eq!(heading(browser).await?, "Log in to pinhouse");
    fill(browser, "input[type=email]", ADMIN_EMAIL).await?;
    fill(browser, "input[type=password]", "wrong password").await?;
    click_button(browser, "Log in").await?;
    let alert = until(
        browser,
        "the login error",
        "document.querySelector('[role=alert]')?.textContent",
    )
    .await?;
    assert_eq!(alert, json!("Wrong e-mail or password."));
    screenshot(browser, "login").await?;
    fill(browser, "input[type=password]", ADMIN_PASSWORD).await?;
    click_button(browser, "Log in").await?;
    until(
        browser,
        "the overview",
        "document.querySelector('main h1')?.textContent.startsWith('Overview')",
    )
    .await?;

    // Create a template: V1 temperature, V2 status text, V3 relay switch, V4 position.
    browser.goto(&server.url("/templates/new")).await?;
    until(
        browser,
        "the template editor",
        "document.querySelector('[name=template-name]')",
    )
    .await?;
    fill(browser, "[name=template-name]", "Greenhouse").await?;
    datastream(browser, "1", "Temperature", "double", "-40", "85").await?;
    fill(browser, "fieldset tbody tr:last-child [name=units]", "°C").await?;
    fill(browser, "fieldset tbody tr:last-child [name=decimals]", "1").await?;
    click_button(browser, "Add datastream").await?;
    datastream(browser, "2", "Status", "string", "", "").await?;
    click_button(browser, "Add datastream").await?;
    datastream(browser, "3", "Relay", "integer", "0", "1").await?;
    click_button(browser, "Add datastream").await?;
    datastream(browser, "4", "Position", "location", "", "").await?;
    click_button(browser, "Add metadata field").await?;
    fill(browser, "[name=m-name]", "Site").await?;
    fill(browser, "[name=m-default]", "North").await?;
    screenshot(browser, "template-editor").await?;
    click_button(browser, "Create template").await?;
    until(
        browser,
        "the saved template",
        "document.querySelector('main h1')?.textContent === 'Template Greenhouse'",
    )
    .await?;
    // A saved template can change: the description, saved with everything else.
    fill(browser, "[name=description]", "Four sensors and a relay").await?;
    click_button(browser, "Save template").await?;
    until(
        browser,
        "the template saved",
        "document.querySelector('main [role=status]')?.textContent.startsWith('Template saved')",
    )
    .await?;

    // Create a device of it: the console opens its dashboard.
    browser.goto(&server.url("/devices")).await?;
    until(
        browser,
        "the device form",
        "document.querySelector('[name=device-name]')",
    )
    .await?;
    fill(browser, "[name=device-name]", "Greenhouse 1").await?;
    click_button(browser, "Create device").await?;
    let path = until(browser, "the dashboard", "/^\\/devices\\/\\d+$/.test(location.pathname) && document.querySelector('#dashboard') && location.pathname").await?;
    let device_id: u32 = path
        .as_str()
        .unwrap_or("")
        .trim_start_matches("/devices/")
        .parse()?;
    click_button(browser, "Show auth token").await?;
    let token = browser.text(&browser.find("code.token").await?).await?;
    ensure!(token.len() == 32, "device token {token:?}");

    // The device's metadata: the template's field with its default, edited and saved.
    until(
        browser,
        "the metadata field",
        "document.querySelector('[name=\"meta-Site\"]')?.value === 'North'",
    )
    .await?;
    fill(browser, "[name=\"meta-Site\"]", "Glasshouse 2").await?;
    click_button(browser, "Save metadata").await?;
    until(
        browser,
        "the metadata saved",
        "document.querySelector('#metadata-title')?.parentNode.textContent.includes('Metadata saved.') && document.querySelector('[name=\"meta-Site\"]').value === 'Glasshouse 2'",
    )
    .await?;

    // The dashboard's live WebSocket is open (authenticated by the session token as a
    // subprotocol), so the values below arrive through it, not by polling.
    until(
        browser,
        "the live connection",
        "document.querySelector('main')?.dataset.live === 'open'",
    )
    .await?;

    // A real Blynk device writes values and then waits for the switch.
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("e2e/blynk_client.py");
    let mut device = Command::new("python3")
        .arg(script)
        .arg(server.hardware.ip().to_string())
        .arg(server.hardware.port().to_string())
        .arg(&token)
        .arg("console")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("running python3 with blynklib")?;
    let mut lines = BufReader::new(device.stdout.take().context("device stdout")?).lines();
    let ready = tokio::time::timeout(WAIT, line_starting(&mut lines, "ready")).await??;
    ensure!(ready == "ready", "device said {ready:?}");

    // The dashboard shows the values, the device online, and the chart their history.
    until(browser, "the temperature gauge", "document.querySelector('[data-widget=gauge][data-pin=\"1\"] [role=meter]')?.getAttribute('aria-valuetext') === '22.5 °C'").await?;
    until(browser, "the status text", "document.querySelector('[data-widget=terminal] .terminal')?.textContent.includes('hello console')").await?;
    until(
        browser,
        "the map",
        "document.querySelector('[data-widget=map] p')?.textContent.includes('52.37020')",
    )
    .await?;
    until(
        browser,
        "the online badge",
        "document.querySelector('main .badge')?.textContent === 'online'",
    )
    .await?;
    let points = until(browser, "the chart's history", "Number(document.querySelector('[data-widget=chart][data-pin=\"1\"] svg')?.dataset.points) >= 1 && document.querySelector('[data-widget=chart][data-pin=\"1\"] svg').dataset.points").await?;
    let points: usize = points.as_str().unwrap_or("0").parse()?;
    ensure!(
        (1..=6).contains(&points),
        "chart shows {points} points for 6 writes"
    );
    browser
        .execute("window.scrollTo(0, 0); return true")
        .await?;
    screenshot(browser, "dashboard").await?;

    // Toggling the switch widget reaches the device over the Blynk protocol.
    let switch = browser
        .find("[data-widget=switch][data-pin=\"3\"] button[role=switch]")
        .await?;
    browser.click(&switch).await?;
    until(browser, "the switch on", "document.querySelector('[data-widget=switch] [role=switch]')?.getAttribute('aria-checked') === 'true'").await?;
    let heard = tokio::time::timeout(WAIT, line_starting(&mut lines, "V3")).await??;
    ensure!(heard == "V3 [['1']]", "device heard {heard:?}");
    let status = tokio::time::timeout(WAIT, device.wait()).await??;
    ensure!(status.success(), "device script failed: {status}");
    until(
        browser,
        "the LED on",
        "document.querySelector('[data-widget=led] .led.on')",
    )
    .await?;

    // Phone-sized dashboard.
    browser.set_window_size(390, 844).await?;
    screenshot(browser, "dashboard-phone").await?;
    browser.set_window_size(1280, 1000).await?;

    // Device list with filters, overview, users, templates, OTA.
    // The device script has exited, so the status filter "offline" lists it.
    browser.goto(&server.url("/devices?status=offline")).await?;
    until(browser, "the device in the list", "[...document.querySelectorAll('#device-results td a')].some(a => a.textContent === 'Greenhouse 1') && document.querySelector('#device-results .badge.offline')?.textContent === 'offline'").await?;
    screenshot(browser, "devices").await?;
    fill(browser, "input[type=search]", "no such device").await?;
    until(
        browser,
        "the empty filter result",
        "document.querySelector('#device-results .empty')",
    )
    .await?;

    browser.goto(&server.url("/")).await?;
    until(
        browser,
        "the device count",
        "document.querySelectorAll('.stat')[0]?.textContent === '1'",
    )
    .await?;
    screenshot(browser, "overview").await?;
    browser.goto(&server.url("/users")).await?;
    until(browser, "the users table", "[...document.querySelectorAll('main td')].some(td => td.textContent === 'admin@example.com')").await?;
    screenshot(browser, "users").await?;
    browser.goto(&server.url("/templates")).await?;
    until(
        browser,
        "the templates table",
        "[...document.querySelectorAll('main td a')].some(a => a.textContent === 'Greenhouse')",
    )
    .await?;
    screenshot(browser, "templates").await?;
    browser.goto(&server.url("/ota")).await?;
    until(browser, "the OTA page", "document.querySelector('main h1')?.textContent === 'OTA shipments' && document.querySelector('main .notice, main table, main .empty')").await?;
    screenshot(browser, "ota").await?;

    // SQL console: the device's rows.
    browser.goto(&server.url("/sql")).await?;
    until(
        browser,
        "the SQL editor",
        "document.querySelector('textarea[name=sql]')",
    )
    .await?;
    fill(
        browser,
        "textarea[name=sql]",
        &format!(
            "SELECT ts, value FROM telemetry WHERE device_id = {device_id} AND pin = 1 ORDER BY ts"
        ),
    )
    .await?;
    click_button(browser, "Run query").await?;
    let rows = until(browser, "the result rows", "document.querySelectorAll('#sql-result tbody tr').length === 6 && [...document.querySelectorAll('#sql-result tbody td')].map(td => td.textContent).join(' ')").await?;
    let text = rows.as_str().unwrap_or("");
    ensure!(text.contains("22.5") && text.contains("20"), "rows: {text}");
    until(
        browser,
        "the result chart",
        "document.querySelector('#sql-output figure svg')",
    )
    .await?;
    screenshot(browser, "sql").await?;

    // A console deep link reloads fine; an unknown API path keeps its JSON 404.
    browser.goto(&format!("{base}/devices/{device_id}")).await?;
    until(
        browser,
        "the reloaded dashboard",
        "document.querySelector('main h1')?.textContent === 'Greenhouse 1'",
    )
    .await?;
    let (status, body) = server.get_text("/api/v1/no-such-endpoint").await?;
    assert_eq!(status, 404);
    assert!(body.contains("\"not_found\""), "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_walkthrough_in_chromium() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir.path().join("data")).await?;
    let driver = Driver::start().await?;
    let browser = driver.browser().await?;
    let outcome = walk(&server, &browser).await;
    if outcome.is_err()
        && let Ok(png) = browser.screenshot().await
    {
        let path = std::env::temp_dir().join("pinhouse-console-failure.png");
        if std::fs::write(&path, png).is_ok() {
            eprintln!("screenshot of the failure: {}", path.display());
        }
    }
    let _ = browser.close().await;
    outcome.with_context(|| format!("server log:\n{}", server.log_text()))
}

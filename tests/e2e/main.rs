//! End-to-end tests: the real server, started in a child process on free
//! loopback ports, driven over the wire by real clients.

mod automations;
mod bad_input;
mod console;
mod device;
mod device_http;
mod history;
mod lifecycle;
mod limits;
mod live;
mod metadata;
mod notify;
mod openapi;
mod ota;
mod pg;
mod provisioning;
mod server;
mod skeleton;
mod sql;
mod transports;
mod webdriver;

/// Not a test: the child process that runs the server for the other tests.
/// [`server::Server::start`] re-executes this test binary with
/// `PINHOUSE_E2E_ARGS` set; without it this returns at once.
#[test]
#[ignore = "runs the server when spawned by the end-to-end tests"]
fn server_process() {
    if let Ok(args) = std::env::var(server::ARGS_ENV) {
        let argv =
            std::iter::once("pinhouse".to_owned()).chain(args.split('\u{1f}').map(str::to_owned));
        if let Err(err) = pinhouse_api::cli::run(argv) {
            eprintln!("server failed: {err}");
            std::process::exit(1);
        }
    }
}

//! The `pinhouse` binary: see `pinhouse --help`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    pinhouse_storage::allocator::configure();
    pinhouse_api::cli::run(std::env::args_os())?;
    Ok(())
}

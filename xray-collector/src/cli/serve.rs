//! `serve`: the web UI and the JSON API over the backend, until SIGINT or
//! SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use xray_collector::serve::{self, AppState, ReadToken, SEARCH_TIMEOUT};

use super::{open, Backend, Missing, UsageError};

#[derive(clap::Args, Debug)]
pub(super) struct ServeArgs {
    /// Address to listen on (a port of 0 picks a free one). Only a
    /// loopback address may be used without a read token.
    #[arg(long, default_value = "127.0.0.1:7373")]
    listen: SocketAddr,
    /// The token every API request (and the UI's login) needs.
    #[arg(long, env = "XRAY_READ_TOKEN", hide_env_values = true)]
    read_token: Option<String>,
}

pub(super) async fn serve(args: ServeArgs, backend: &Backend) -> anyhow::Result<ExitCode> {
    let token = args.read_token.filter(|t| !t.is_empty());
    serve::check_listen(args.listen, token.as_deref()).map_err(UsageError)?;
    let store = open(backend, Missing::Refuse).await?;
    let (listener, bound) = serve::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let state = Arc::new(AppState {
        store,
        token: token.as_deref().map(ReadToken::new),
        search_timeout: SEARCH_TIMEOUT,
    });
    // The address on stdout, first, so a script (or a test) that started
    // the server on port 0 knows where it is.
    let mut out = std::io::stdout();
    writeln!(out, "serving http://{bound}")?;
    out.flush()?;
    tracing::info!(address = %bound, token = token.is_some(), "serving the web UI and the API");
    serve::serve(
        listener,
        serve::router(state),
        super::run::wait_for_signal(),
    )
    .await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

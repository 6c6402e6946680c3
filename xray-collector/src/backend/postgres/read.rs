//! Small reads used by tests and by `migrate`/health checks. The query
//! commands (`executions`, `show`, `why`, `search`, `stats`) live elsewhere.

use tokio_postgres::Client;
use uuid::Uuid;

/// Number of rows in `xray.executions`.
pub(crate) async fn count_executions(client: &Client) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT count(*) FROM xray.executions", &[])
        .await?
        .get(0))
}

/// Number of rows in `xray.steps`.
pub(crate) async fn count_steps(client: &Client) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT count(*) FROM xray.steps", &[])
        .await?
        .get(0))
}

/// Every step's id and status, ordered by id.
pub(crate) async fn step_statuses(
    client: &Client,
) -> Result<Vec<(Uuid, String)>, tokio_postgres::Error> {
    let rows = client
        .query("SELECT id, status FROM xray.steps ORDER BY id", &[])
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

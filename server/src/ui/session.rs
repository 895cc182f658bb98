//! Dashboard sessions: signing in with an API key opens a session stored in the run
//! store (so it survives a restart and holds across servers on one store), named by a
//! random token the browser keeps in an HttpOnly, SameSite=Strict cookie. The store keeps
//! only the token's SHA-256, the key's id and the session's CSRF token; the key is checked
//! again on every request, so revoking it ends its sessions at once.

use flow_runtime::store::SqlValue;
use flow_runtime::{Store, StoreError};

use crate::error::ApiError;
use crate::keys::{self, Key, Refusal, constant_time_eq, digest, now_ms};

/// The cookie that carries the session token.
pub const COOKIE: &str = "flow_session";

/// How long a session lasts after sign-in.
pub const LIFETIME_MS: i64 = 12 * 3_600_000;

const TABLE: &str = "
CREATE TABLE IF NOT EXISTS ui_sessions (
    token_hash {blob} PRIMARY KEY,
    key_id     TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
";

pub async fn prepare(store: &Store) -> Result<(), StoreError> {
    store.create_tables(TABLE).await
}

/// A session opened for `key`: the token for the cookie, the CSRF token for forms.
pub struct Opened {
    pub token: String,
    pub csrf: String,
}

/// Opens a session for `key` (and forgets expired ones).
pub async fn open(store: &Store, key: &Key) -> Result<Opened, ApiError> {
    let token = random_hex()?;
    let csrf = random_hex()?;
    let (hash, key_id, row_csrf) = (digest(&token).to_vec(), key.id.clone(), csrf.clone());
    let now = now_ms();
    store
        .transact(move |tx| {
            tx.execute("DELETE FROM ui_sessions WHERE expires_at <= ?1", &[now.into()])?;
            tx.execute(
                "INSERT INTO ui_sessions (token_hash, key_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                &[
                    hash.into(),
                    key_id.into(),
                    row_csrf.into(),
                    now.into(),
                    (now + LIFETIME_MS).into(),
                ],
            )
        })
        .await?;
    Ok(Opened { token, csrf })
}

/// The key and CSRF token of the session `token` names, when it is live and its key is.
pub fn find(store: &Store, token: &str) -> Result<Option<(Key, String)>, StoreError> {
    let hash = digest(token);
    let row: Option<(String, String, Vec<u8>)> = store
        .query(
            "SELECT key_id, csrf, token_hash FROM ui_sessions WHERE token_hash = ?1 AND expires_at > ?2",
            &[SqlValue::Bytes(hash.to_vec()), now_ms().into()],
        )?
        .first()
        .map(|r| Ok::<_, StoreError>((r.get(0)?, r.get(1)?, r.get(2)?)))
        .transpose()?;
    let Some((key_id, csrf, stored)) = row else {
        return Ok(None);
    };
    if !constant_time_eq(&stored, &hash) {
        return Ok(None);
    }
    match keys::by_id(store, &key_id)? {
        Ok(key) => Ok(Some((key, csrf))),
        Err(Refusal::Unknown | Refusal::Expired | Refusal::Revoked) => Ok(None),
    }
}

/// Ends the session `token` names.
pub async fn close(store: &Store, token: &str) -> Result<(), StoreError> {
    let hash = digest(token).to_vec();
    store
        .transact(move |tx| {
            tx.execute(
                "DELETE FROM ui_sessions WHERE token_hash = ?1",
                &[hash.into()],
            )
        })
        .await?;
    Ok(())
}

fn random_hex() -> Result<String, ApiError> {
    keys::random_hex(32)
        .map_err(|e| ApiError::internal("cannot draw random bytes for a session", e))
}

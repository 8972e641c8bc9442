//! [`AuthorizationCodeStore`]: the `authorize` endpoint's one-time codes, by hash.

use async_trait::async_trait;
use time::OffsetDateTime;

use dmsync_core::StoreResult;
use dmsync_core::identity::{AuthorizationCode, CodeRedemption};
use dmsync_core::store::AuthorizationCodeStore;

use crate::convert::{json_list, parse_json_list};
use crate::db::{Query, SqlStore};
use crate::rows::Columns;

#[async_trait]
impl AuthorizationCodeStore for SqlStore {
    async fn insert_authorization_code(&self, code: &AuthorizationCode, now: OffsetDateTime) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        // Expired codes can never be redeemed, so they go as new ones come: the table holds at
        // most ten minutes of sign-ins.
        tx.execute(Query::new("DELETE FROM authorization_codes WHERE expires_at < $1").bind(now)).await?;
        let insert = Query::new(
            "INSERT INTO authorization_codes (code_hash, tenant_id, client_id, user_object_id, user_principal_name,
                 password_fingerprint, scopes, requested_scope, redirect_uri, code_challenge, nonce, issued_at,
                 expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&code.code_hash)
        .bind(code.tenant_id)
        .bind(code.client_id)
        .bind(code.user_object_id)
        .bind(&code.user_principal_name)
        .bind(&code.password_fingerprint)
        .bind(json_list(&code.scopes))
        .bind(&code.requested_scope)
        .bind(&code.redirect_uri)
        .bind(&code.code_challenge)
        .bind(&code.nonce)
        .bind(code.issued_at)
        .bind(code.expires_at);
        tx.execute(insert).await?;
        tx.commit().await
    }

    async fn redeem_authorization_code(&self, code_hash: &str, now: OffsetDateTime) -> StoreResult<CodeRedemption> {
        // One statement that only an unredeemed row matches: of two concurrent redemptions, the
        // second finds the row already marked (PostgreSQL re-checks the condition after the
        // first's row lock; SQLite has one writer).
        let redeem = Query::new(
            "UPDATE authorization_codes SET redeemed_at = $2 WHERE code_hash = $1 AND redeemed_at IS NULL RETURNING *",
        )
        .bind(code_hash)
        .bind(now);
        if let Some(row) = self.write().fetch_optional(redeem).await? {
            return Ok(CodeRedemption::Redeemed(code_from_row(&row)?));
        }
        let query = Query::new("SELECT * FROM authorization_codes WHERE code_hash = $1").bind(code_hash);
        Ok(match self.write().fetch_optional(query).await? {
            Some(row) => CodeRedemption::AlreadyRedeemed(code_from_row(&row)?),
            None => CodeRedemption::Unknown,
        })
    }
}

fn code_from_row(row: &impl Columns) -> StoreResult<AuthorizationCode> {
    Ok(AuthorizationCode {
        code_hash: row.text("code_hash")?,
        tenant_id: row.id("tenant_id")?,
        client_id: row.uuid("client_id")?,
        user_object_id: row.uuid("user_object_id")?,
        user_principal_name: row.text("user_principal_name")?,
        password_fingerprint: row.text("password_fingerprint")?,
        scopes: parse_json_list(&row.text("scopes")?)?,
        requested_scope: row.text("requested_scope")?,
        redirect_uri: row.text("redirect_uri")?,
        code_challenge: row.text("code_challenge")?,
        nonce: row.opt_text("nonce")?,
        issued_at: row.time("issued_at")?,
        expires_at: row.time("expires_at")?,
    })
}

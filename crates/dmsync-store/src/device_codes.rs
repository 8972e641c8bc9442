//! [`DeviceCodeStore`]: the device authorization grant's codes. Each change is one conditional
//! statement, so that concurrent polls and approvals (on replicas too) agree on the state.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use dmsync_core::device_codes::{
    ApprovedUser, DeviceCode, DeviceCodeDecision, DeviceCodeState, DevicePoll, EXPIRED_CODES_KEPT_FOR,
};
use dmsync_core::store::DeviceCodeStore;
use dmsync_core::{StoreError, StoreResult, TenantId};

use crate::db::{Query, SqlStore};
use crate::rows::Columns;

#[async_trait]
impl DeviceCodeStore for SqlStore {
    async fn insert_device_code(&self, code: &DeviceCode, now: OffsetDateTime) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        tx.execute(Query::new("DELETE FROM device_codes WHERE expires_at <= $1").bind(now - EXPIRED_CODES_KEPT_FOR))
            .await?;
        let query = Query::new(
            "INSERT INTO device_codes (device_code_hash, user_code, tenant_id, client_id, scope, created_at, expires_at,
                                       last_polled_at, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&code.device_code_hash)
        .bind(&code.user_code)
        .bind(code.tenant_id)
        .bind(&code.client_id)
        .bind(&code.scope)
        .bind(code.created_at)
        .bind(code.expires_at)
        .bind(code.last_polled_at)
        .bind(code.state.as_str());
        tx.execute(query).await?;
        tx.commit().await
    }

    async fn pending_device_code(&self, user_code: &str, now: OffsetDateTime) -> StoreResult<Option<DeviceCode>> {
        let query =
            Query::new("SELECT * FROM device_codes WHERE user_code = $1 AND state = 'pending' AND expires_at > $2")
                .bind(user_code)
                .bind(now);
        self.read().fetch_optional(query).await?.as_ref().map(device_code_from_row).transpose()
    }

    async fn decide_device_code(
        &self,
        user_code: &str,
        decision: DeviceCodeDecision,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let (state, tenant, user, upn) = match decision {
            DeviceCodeDecision::Approve(user) => {
                ("approved", Some(user.tenant_id), Some(user.object_id.to_string()), Some(user.user_principal_name))
            }
            DeviceCodeDecision::Decline => ("declined", None, None, None),
        };
        let query = Query::new(
            "UPDATE device_codes SET state = $2, approved_tenant_id = $3, approved_user_id = $4,
                                     approved_user_principal_name = $5
              WHERE user_code = $1 AND state = 'pending' AND expires_at > $6",
        )
        .bind(user_code)
        .bind(state)
        .bind(tenant)
        .bind(user.as_deref())
        .bind(upn.as_deref())
        .bind(now);
        Ok(self.write().execute(query).await? == 1)
    }

    async fn poll_device_code(
        &self,
        device_code_hash: &str,
        now: OffsetDateTime,
        interval: Duration,
    ) -> StoreResult<Option<DevicePoll>> {
        let query = Query::new("SELECT * FROM device_codes WHERE device_code_hash = $1").bind(device_code_hash);
        let Some(code) = self.read().fetch_optional(query).await?.as_ref().map(device_code_from_row).transpose()?
        else {
            return Ok(None);
        };
        let cutoff = now - interval;
        let mut too_soon = code.last_polled_at.is_some_and(|last| last > cutoff);
        if !too_soon {
            // Conditional, so that of two polls arriving together one is recorded and the other
            // is too soon.
            let record = Query::new(
                "UPDATE device_codes SET last_polled_at = $2
                  WHERE device_code_hash = $1 AND (last_polled_at IS NULL OR last_polled_at <= $3)",
            )
            .bind(device_code_hash)
            .bind(now)
            .bind(cutoff);
            too_soon = self.write().execute(record).await? == 0;
        }
        Ok(Some(DevicePoll { code, too_soon }))
    }

    async fn redeem_device_code(&self, device_code_hash: &str) -> StoreResult<bool> {
        let query =
            Query::new("UPDATE device_codes SET state = 'redeemed' WHERE device_code_hash = $1 AND state = 'approved'")
                .bind(device_code_hash);
        Ok(self.write().execute(query).await? == 1)
    }
}

fn device_code_from_row(row: &impl Columns) -> StoreResult<DeviceCode> {
    let state = match row.text("state")?.as_str() {
        "pending" => DeviceCodeState::Pending,
        "approved" => DeviceCodeState::Approved(ApprovedUser {
            tenant_id: TenantId::from_uuid(row.uuid("approved_tenant_id")?),
            object_id: row.uuid("approved_user_id")?,
            user_principal_name: row.text("approved_user_principal_name")?,
        }),
        "declined" => DeviceCodeState::Declined,
        "redeemed" => DeviceCodeState::Redeemed,
        other => return Err(StoreError::Database(format!("unknown device code state '{other}'"))),
    };
    let tenant_id: Option<TenantId> =
        row.opt_text("tenant_id")?.map(|t| crate::convert::parse_uuid(&t).map(TenantId::from_uuid)).transpose()?;
    Ok(DeviceCode {
        device_code_hash: row.text("device_code_hash")?,
        user_code: row.text("user_code")?,
        tenant_id,
        client_id: row.text("client_id")?,
        scope: row.text("scope")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
        last_polled_at: row.opt_time("last_polled_at")?,
        state,
    })
}

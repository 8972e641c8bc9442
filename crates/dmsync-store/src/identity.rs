//! [`IdentityStore`]: tenants, app registrations, users and signing keys.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use dmsync_core::identity::{AppCertificate, AppRegistration, SigningKey, Tenant, User};
use dmsync_core::store::IdentityStore;
use dmsync_core::{StoreError, StoreResult, TenantId};

use crate::convert::json_list;
use crate::db::{Query, SqlStore};
use crate::rows::*;
use crate::scope_tags::insert_default_role_scope_tag;

#[async_trait]
impl IdentityStore for SqlStore {
    async fn create_tenant(&self, tenant: &Tenant, now: OffsetDateTime) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let query = Query::new("INSERT INTO tenants (id, domain, created_at) VALUES ($1, $2, $3)")
            .bind(tenant.id)
            .bind(&tenant.domain)
            .bind(now);
        tx.execute(query).await?;
        tx.execute(insert_default_role_scope_tag(tenant.id)).await?;
        tx.commit().await
    }

    async fn tenant(&self, id: TenantId) -> StoreResult<Option<Tenant>> {
        let query = Query::new("SELECT id, domain FROM tenants WHERE id = $1").bind(id);
        self.read().fetch_optional(query).await?.as_ref().map(tenant_from_row).transpose()
    }

    async fn tenant_created_at(&self, id: TenantId) -> StoreResult<Option<OffsetDateTime>> {
        let query = Query::new("SELECT created_at FROM tenants WHERE id = $1").bind(id);
        self.read().fetch_optional(query).await?.as_ref().map(|row| row.time("created_at")).transpose()
    }

    async fn tenant_by_domain(&self, domain: &str) -> StoreResult<Option<Tenant>> {
        let matches = self.dialect().nocase_eq("domain", "$1");
        let query = Query::new(format!("SELECT id, domain FROM tenants WHERE {matches}")).bind(domain);
        self.read().fetch_optional(query).await?.as_ref().map(tenant_from_row).transpose()
    }

    async fn tenant_count(&self) -> StoreResult<u64> {
        Ok(self.read().scalar::<i64>(Query::new("SELECT count(*) FROM tenants")).await? as u64)
    }

    async fn list_tenants(&self, limit: u32) -> StoreResult<Vec<Tenant>> {
        let query = Query::new("SELECT id, domain FROM tenants ORDER BY domain, id LIMIT $1").bind(i64::from(limit));
        self.read().fetch_all(query).await?.iter().map(tenant_from_row).collect()
    }

    async fn create_app(&self, app: &AppRegistration) -> StoreResult<()> {
        let query = Query::new(
            "INSERT INTO app_registrations
                 (tenant_id, client_id, object_id, display_name, secret_hash, roles, delegated_permissions, redirect_uris)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(app.tenant_id)
        .bind(app.client_id)
        .bind(app.object_id)
        .bind(&app.display_name)
        .bind(&app.secret_hash)
        .bind(json_list(&app.roles))
        .bind(app.delegated_permissions.as_deref().map(json_list).as_deref())
        .bind(json_list(&app.redirect_uris));
        self.write().execute(query).await?;
        Ok(())
    }

    async fn app(&self, tenant: TenantId, client_id: Uuid) -> StoreResult<Option<AppRegistration>> {
        let query = Query::new("SELECT * FROM app_registrations WHERE tenant_id = $1 AND client_id = $2")
            .bind(tenant)
            .bind(client_id);
        self.read().fetch_optional(query).await?.as_ref().map(app_from_row).transpose()
    }

    async fn list_apps(&self, tenant: TenantId) -> StoreResult<Vec<AppRegistration>> {
        let query = Query::new("SELECT * FROM app_registrations WHERE tenant_id = $1 ORDER BY display_name, client_id")
            .bind(tenant);
        self.read().fetch_all(query).await?.iter().map(app_from_row).collect()
    }

    async fn delete_app(&self, tenant: TenantId, client_id: Uuid) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let certificates = Query::new("DELETE FROM app_certificates WHERE tenant_id = $1 AND client_id = $2")
            .bind(tenant)
            .bind(client_id);
        tx.execute(certificates).await?;
        let assertions = Query::new("DELETE FROM consumed_assertions WHERE tenant_id = $1 AND client_id = $2")
            .bind(tenant)
            .bind(client_id);
        tx.execute(assertions).await?;
        let app = Query::new("DELETE FROM app_registrations WHERE tenant_id = $1 AND client_id = $2")
            .bind(tenant)
            .bind(client_id);
        let deleted = tx.execute(app).await? == 1;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn set_app_secret(&self, tenant: TenantId, client_id: Uuid, secret_hash: &str) -> StoreResult<bool> {
        let query = Query::new("UPDATE app_registrations SET secret_hash = $3 WHERE tenant_id = $1 AND client_id = $2")
            .bind(tenant)
            .bind(client_id)
            .bind(secret_hash);
        Ok(self.write().execute(query).await? == 1)
    }

    async fn add_app_certificate(
        &self,
        tenant: TenantId,
        client_id: Uuid,
        cert: &AppCertificate,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        // The app's existence is checked in the insert itself, so a concurrent delete of the app
        // cannot leave a certificate behind.
        let query = Query::new(
            "INSERT INTO app_certificates
                 (tenant_id, client_id, thumbprint_sha1, thumbprint_sha256, certificate_pem, not_before, not_after, added_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8
             WHERE EXISTS (SELECT 1 FROM app_registrations WHERE tenant_id = $1 AND client_id = $2)",
        )
        .bind(tenant)
        .bind(client_id)
        .bind(&cert.thumbprint_sha1)
        .bind(&cert.thumbprint_sha256)
        .bind(&cert.certificate_pem)
        .bind(cert.not_before)
        .bind(cert.not_after)
        .bind(now);
        match self.write().execute(query).await? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    async fn app_certificates(&self, tenant: TenantId, client_id: Uuid) -> StoreResult<Vec<AppCertificate>> {
        let query = Query::new(
            "SELECT * FROM app_certificates WHERE tenant_id = $1 AND client_id = $2 ORDER BY added_at, thumbprint_sha1",
        )
        .bind(tenant)
        .bind(client_id);
        self.read().fetch_all(query).await?.iter().map(app_certificate_from_row).collect()
    }

    async fn delete_app_certificate(
        &self,
        tenant: TenantId,
        client_id: Uuid,
        thumbprint_sha1: &str,
    ) -> StoreResult<bool> {
        let query =
            Query::new("DELETE FROM app_certificates WHERE tenant_id = $1 AND client_id = $2 AND thumbprint_sha1 = $3")
                .bind(tenant)
                .bind(client_id)
                .bind(thumbprint_sha1);
        Ok(self.write().execute(query).await? == 1)
    }

    async fn consume_assertion(
        &self,
        tenant: TenantId,
        client_id: Uuid,
        jti: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let expired =
            Query::new("DELETE FROM consumed_assertions WHERE tenant_id = $1 AND client_id = $2 AND expires_at < $3")
                .bind(tenant)
                .bind(client_id)
                .bind(now);
        tx.execute(expired).await?;
        let record = Query::new(
            "INSERT INTO consumed_assertions (tenant_id, client_id, jti, expires_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(client_id)
        .bind(jti)
        .bind(expires_at);
        let first = tx.execute(record).await? == 1;
        tx.commit().await?;
        Ok(first)
    }

    async fn create_user(&self, user: &User) -> StoreResult<()> {
        let query = Query::new(
            "INSERT INTO users (tenant_id, object_id, user_principal_name, display_name, password_hash, scopes)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user.tenant_id)
        .bind(user.object_id)
        .bind(&user.user_principal_name)
        .bind(&user.display_name)
        .bind(&user.password_hash)
        .bind(json_list(&user.scopes));
        self.write().execute(query).await?;
        Ok(())
    }

    async fn user_by_upn(&self, tenant: TenantId, upn: &str) -> StoreResult<Option<User>> {
        let matches = self.dialect().nocase_eq("user_principal_name", "$2");
        let query =
            Query::new(format!("SELECT * FROM users WHERE tenant_id = $1 AND {matches}")).bind(tenant).bind(upn);
        self.read().fetch_optional(query).await?.as_ref().map(user_from_row).transpose()
    }

    async fn set_user_password(&self, tenant: TenantId, object_id: Uuid, password_hash: &str) -> StoreResult<bool> {
        let query = Query::new("UPDATE users SET password_hash = $3 WHERE tenant_id = $1 AND object_id = $2")
            .bind(tenant)
            .bind(object_id)
            .bind(password_hash);
        Ok(self.write().execute(query).await? == 1)
    }

    async fn delete_user(&self, tenant: TenantId, object_id: Uuid) -> StoreResult<bool> {
        let query =
            Query::new("DELETE FROM users WHERE tenant_id = $1 AND object_id = $2").bind(tenant).bind(object_id);
        Ok(self.write().execute(query).await? == 1)
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
        let query = Query::new("SELECT * FROM signing_keys ORDER BY created_at, kid");
        self.read().fetch_all(query).await?.iter().map(signing_key_from_row).collect()
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()> {
        let query =
            Query::new("INSERT INTO signing_keys (kid, private_pem, n, e, created_at) VALUES ($1, $2, $3, $4, $5)");
        self.write().execute(bind_key(query, key)).await?;
        Ok(())
    }

    async fn insert_first_signing_key(&self, key: &SigningKey) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        if let Some(lock) = self.dialect().lock_table("signing_keys") {
            tx.execute(Query::new(lock)).await?;
        }
        let query = Query::new(
            "INSERT INTO signing_keys (kid, private_pem, n, e, created_at)
             SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
        );
        let inserted = tx.execute(bind_key(query, key)).await? == 1;
        tx.commit().await?;
        Ok(inserted)
    }
}

fn bind_key(query: Query, key: &SigningKey) -> Query {
    query.bind(&key.kid).bind(&key.private_pem).bind(&key.n).bind(&key.e).bind(key.created_at)
}

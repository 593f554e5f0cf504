//! The OpenAPI 3.1 document, generated from the handlers, served at `/openapi.json`.

use super::{admin, component, cosignatures, health, restore, transparency};
use crate::problem::Problem;
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

/// Errors every component route can answer.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ComponentErrors {
    /// Malformed request: bad JSON, a bad JID, a field out of range, a bad bundle, secret or secret update.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No or unknown bearer token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The admin token, the account is revoked, or (lookup) the requester holds as many keys as allowed.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// The body or a field is too large.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not declared as application/json.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// The database is unavailable (or, for the transparency routes, no VRF key is configured or the map could not answer).
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// Errors every admin route can answer.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum AdminErrors {
    /// Malformed request: bad JSON, a bad JID, a field out of range, a bad cursor.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No or unknown bearer token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The component token.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// The body is too large.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not declared as application/json.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// The database is unavailable.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["component", "admin"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "keyward keydir", description = "The keyward key directory: component API and admin API (see docs/keydir-api.md)."),
    paths(
        component::publish, component::secret, component::lookup, component::relay, component::claim, component::ack,
        component::release, component::cache_lease, restore::oprf, restore::restore_proof,
        admin::revoke, admin::unlock, admin::account, admin::list, admin::audit,
        transparency::lookup, transparency::lookups, transparency::history, transparency::epoch, transparency::vrf_key, transparency::audit,
        transparency::head, transparency::consistency, transparency::inclusion, transparency::key,
        cosignatures::submit,
        health::healthz, health::readyz,
    ),
    components(schemas(Problem)),
    modifiers(&BearerSchemes),
    tags(
        (name = "component", description = "For the XMPP component (component token)"),
        (name = "admin", description = "For admins (admin token)"),
        (name = "transparency", description = "The key transparency map's epoch, VRF key and audit proofs, and the signed epoch heads with their log proofs (public, no token)"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

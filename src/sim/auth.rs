//! Authentication as Zoom does it: Server-to-Server OAuth tokens, legacy HS256 JWTs,
//! and bearer tokens only in the `Authorization` header (never in the URL).

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use super::api::{ApiError, ApiResult};
use super::state::{Shared, State as SimState};

/// An exp above this is in milliseconds (year 5138 in seconds): Zoom refuses it.
const MAX_EXP_SECONDS: f64 = 1e11;

fn oauth_error(status: StatusCode, error: &str, reason: &str) -> Response {
    (status, Json(json!({"reason": reason, "error": error}))).into_response()
}

/// `POST /oauth/token`: `grant_type=account_credentials&account_id=...` (form body or,
/// as Zoom's own docs show, the query string) with `Basic base64(client_id:secret)`.
pub(crate) async fn token(
    State(sh): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let cfg = &sh.cfg;
    let mut params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        params.extend(url::form_urlencoded::parse(&body).into_owned());
    }
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());

    let basic_ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
        })
        .and_then(|b64| STANDARD.decode(b64).ok())
        .is_some_and(|raw| {
            let want = format!("{}:{}", cfg.client_id, cfg.client_secret);
            raw == want.as_bytes()
        });
    if !basic_ok {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client_id or client_secret",
        );
    }
    match param("grant_type") {
        Some("account_credentials") => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "unsupported grant type",
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing grant type",
            );
        }
    }
    match param("account_id") {
        Some(a) if a == cfg.account_id => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Invalid account_id",
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing account_id",
            );
        }
    }
    let token = sh.lock().issue_token(cfg.token_expires_in);
    Json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": cfg.token_expires_in,
        "scope": cfg.scope,
        "api_url": sh.api_origin,
    }))
    .into_response()
}

/// The bearer token of a request, if it has one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Checks the `Authorization: Bearer` header: an unexpired OAuth token of this sim, or a
/// valid JWT. Anything else is 401 code 124.
pub(crate) fn check_bearer(sh: &Shared, headers: &HeaderMap) -> ApiResult<()> {
    let token = bearer(headers).ok_or_else(ApiError::invalid_token)?;
    let mut st = sh.lock();
    if token.matches('.').count() == 2 {
        return check_jwt(sh, &mut st, token);
    }
    let now = st.now();
    match st.tokens.get(token) {
        Some(exp) if *exp > now => Ok(()),
        _ => Err(ApiError::invalid_token()),
    }
}

/// The API host's download hop (`/rec/download/<opaque>`): the app's token as anywhere,
/// or a webhook's `download_token` (unexpired on the sim's clock, and issued for the
/// recording the link belongs to). Refusals are the same 401 code 124 as for a bad OAuth
/// token. A link the sim does not know is left to the handler (404 code 3301).
pub(crate) fn check_download_bearer(sh: &Shared, headers: &HeaderMap, path: &str) -> ApiResult<()> {
    let token = bearer(headers).ok_or_else(ApiError::invalid_token)?;
    {
        let mut st = sh.lock();
        if let Some(dt) = st.download_tokens.get(token) {
            let now = st.now();
            let op = path.strip_prefix("/rec/download/").unwrap_or("");
            let same_recording = match st.dl_links.get(op) {
                Some(link) => link.uuid == dt.uuid,
                None => true,
            };
            if dt.expires <= now || !same_recording {
                return Err(ApiError::invalid_token());
            }
            st.counters.downloads_with_download_token += 1;
            return Ok(());
        }
    }
    check_bearer(sh, headers)
}

fn check_jwt(sh: &Shared, st: &mut SimState, token: &str) -> ApiResult<()> {
    let cfg = &sh.cfg;
    // The header must say HS256 (decode_header fails on "none" and unknown names).
    let header = jsonwebtoken::decode_header(token).map_err(|_| ApiError::invalid_token())?;
    if header.alg != Algorithm::HS256 {
        return Err(ApiError::invalid_token());
    }
    let mut v = Validation::new(Algorithm::HS256);
    // exp and nbf are checked below against the sim's clock, with no leeway.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v.required_spec_claims = HashSet::new();
    let key = DecodingKey::from_secret(cfg.api_secret.as_bytes());
    let data =
        jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|_| ApiError::invalid_token())?;
    let claims = data.claims;
    if claims.get("iss").and_then(Value::as_str) != Some(cfg.api_key.as_str()) {
        return Err(ApiError::invalid_token());
    }
    let now = st.now().timestamp() as f64;
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or_else(ApiError::invalid_token)?;
    if exp > MAX_EXP_SECONDS || exp <= now {
        return Err(ApiError::invalid_token());
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_f64)
        && nbf > now
    {
        return Err(ApiError::invalid_token());
    }
    if st.jwt_revoked.remove(token) {
        return Err(ApiError::invalid_token());
    }
    st.jwt_seen.insert(token.to_string());
    Ok(())
}

/// Whether a query string carries a token: an `access_token` parameter, or any value
/// that is a token this sim issued or saw (or the request's own bearer token).
pub(crate) fn token_in_query(st: &SimState, query: &str, own: Option<&str>) -> bool {
    url::form_urlencoded::parse(query.as_bytes()).any(|(k, v)| {
        k.eq_ignore_ascii_case("access_token")
            || st.is_known_token(&v)
            || own.is_some_and(|t| t == v)
    })
}

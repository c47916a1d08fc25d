//! The OAuth2 token endpoint (RFC 6749 §4.4, client credentials) at `[trust] token_path`.
//!
//! Input: a GET, POST or PUT request; parameters from the query string and the body (form, or a
//! JSON object of strings).
//! Output: `200 {access_token, token_type: "Bearer", expires_in}` or an RFC 6749 §5.2 error
//! body (`invalid_request`, `invalid_client` with 401 and `WWW-Authenticate`,
//! `unsupported_grant_type`) with the gateway's `request_id` beside `error`, as every other
//! rejection has it; every answer carries `X-Request-Id`. The client authenticates with HTTP
//! Basic, with the `client_id`/`client_secret` parameters, or with `username`/`password`.
//! `grant_type` may be left out: valid credentials without it get a token (ConnectSecure's
//! undocumented "Authentication URL" check sends Basic credentials or `username`/`password`
//! and nothing else), as does a resource-owner request (`grant_type=password`) with them.
//! Reads at most [`MAX_FORM_BYTES`]; never logs a secret, a token or a parameter value.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::credentials::{basic_credentials, BASIC_CHALLENGE};
use super::oauth::{now_s, Issuer};
use crate::body::{self, BodyLimits};
use crate::parse::doc::Doc;
use crate::route::RequestId;

/// A token request is a few short parameters; anything larger is not one.
const MAX_FORM_BYTES: u64 = 8 * 1024;
/// Longest `scope` echoed back.
const MAX_SCOPE_BYTES: usize = 256;

/// Why a token request was refused (RFC 6749 §5.2 codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenError {
    /// Malformed request: unreadable body, repeated parameter, two client auth methods,
    /// missing `grant_type`.
    InvalidRequest,
    /// Unknown client or wrong secret.
    InvalidClient,
    /// A grant other than `client_credentials`.
    UnsupportedGrantType,
}

impl TokenError {
    fn code(self) -> &'static str {
        match self {
            TokenError::InvalidRequest => "invalid_request",
            TokenError::InvalidClient => "invalid_client",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
        }
    }
}

/// The answer to a token request, and why it was refused (a bounded code for the rejection
/// metric), if it was.
#[derive(Debug)]
pub struct Served {
    /// The HTTP answer.
    pub response: Response<Full<Bytes>>,
    /// `None` when a token was issued.
    pub refused: Option<&'static str>,
}

/// Answers one token request.
pub async fn serve(
    issuer: &Issuer,
    request: Request<hyper::body::Incoming>,
    read_timeout: Duration,
    request_id: &RequestId,
) -> Served {
    let refuse = |response, reason| Served {
        response,
        refused: Some(reason),
    };
    let (parts, body) = request.into_parts();
    // HYPR's hooks are EventBridge API destinations (vendor notes §2), whose OAuth connection
    // lets the customer pick GET, POST or PUT for the token request.
    if ![Method::GET, Method::POST, Method::PUT].contains(&parts.method) {
        let mut response = json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &error_body(TokenError::InvalidRequest, request_id),
            request_id,
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, POST, PUT"));
        tracing::info!(status = 405, reason = "method_not_allowed", method = %parts.method, "token request refused");
        return refuse(response, "method_not_allowed");
    }
    // A transfer coding hyper does not take off would hand the form on still encoded.
    if let Err(e) = body::transfer_codings(&parts.headers) {
        let body = json!({
            "error": TokenError::InvalidRequest.code(),
            "error_description": e.to_string(),
            "request_id": request_id.0,
        });
        let response = json_response(StatusCode::NOT_IMPLEMENTED, &body, request_id);
        tracing::info!(
            status = 501,
            reason = "unsupported_transfer_coding",
            "token request refused"
        );
        return refuse(response, "unsupported_transfer_coding");
    }
    let mut raw_params = parts.uri.query().unwrap_or_default().as_bytes().to_vec();
    // A GET may carry a form body too (authlib's client_secret_post over GET does): read it
    // on both methods; an empty body reads as nothing.
    {
        let limits = BodyLimits {
            max_body_bytes: MAX_FORM_BYTES,
            max_decompressed_bytes: MAX_FORM_BYTES,
            read_timeout,
        };
        match body::read_maybe_mislabelled(body, &parts.headers, &limits).await {
            Ok(form) if !form.is_empty() => {
                let Some(form) = as_form(&parts.headers, &form) else {
                    tracing::info!(
                        status = 400,
                        reason = "token_body_unreadable",
                        "token request refused"
                    );
                    return refuse(
                        error_response(TokenError::InvalidRequest, request_id),
                        "token_body_unreadable",
                    );
                };
                if !raw_params.is_empty() {
                    raw_params.push(b'&');
                }
                raw_params.extend_from_slice(&form);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::info!(status = 400, reason = "token_body_unreadable", error = %e, "token request refused");
                return refuse(
                    error_response(TokenError::InvalidRequest, request_id),
                    "token_body_unreadable",
                );
            }
        }
    }
    let basic = basic_credentials(&parts.headers);
    // Two Authorization lines are two client authentications (RFC 6749 §2.3), whichever
    // would pass: the events' routes refuse them too (`credential_repeated`).
    let repeated = parts
        .headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some();
    let decided = match repeated {
        true => Err(TokenError::InvalidRequest),
        false => decide(issuer, &raw_params, basic.as_deref()),
    };
    match decided {
        Ok(granted) => {
            tracing::info!(source = %granted.source, "access token issued");
            let mut body = json!({
                "access_token": granted.token,
                "token_type": "Bearer",
                "expires_in": issuer.keys.lifetime_s(),
            });
            if let (Some(scope), Some(fields)) = (granted.scope, body.as_object_mut()) {
                fields.insert("scope".to_owned(), json!(scope));
            }
            Served {
                response: json_response(StatusCode::OK, &body, request_id),
                refused: None,
            }
        }
        Err(e) => {
            let response = error_response(e, request_id);
            tracing::info!(
                status = response.status().as_u16(),
                reason = e.code(),
                "token request refused"
            );
            refuse(response, e.code())
        }
    }
}

/// The body as form parameters. A JSON object of strings is accepted too, because HYPR's
/// console suggests a `Content-Type: application/json` header parameter on the token request.
fn as_form(headers: &http::HeaderMap, body: &[u8]) -> Option<Vec<u8>> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return Some(body.to_vec());
    }
    // Read as sent, a repeated key kept (a map would keep its last value, and the repetition
    // would pass where a repeated form parameter is refused).
    let Doc::Object(mut members) = Doc::parse(std::str::from_utf8(body).ok()?).ok()? else {
        return None;
    };
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in members.take() {
        form.append_pair(&name, value.as_str()?);
    }
    Some(form.finish().into_bytes())
}

/// A granted token (its `Debug` does not show it).
struct Granted {
    token: String,
    source: String,
    scope: Option<String>,
}

impl std::fmt::Debug for Granted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Granted")
            .field("source", &self.source)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The decision, apart from HTTP: parameters and Basic credentials → token or error.
///
/// Credentials come as HTTP Basic, as `client_id`/`client_secret` (RFC 6749 §2.3.1), or as
/// `username`/`password`: ConnectSecure's Authentication URL sends "the username and
/// password" in a form its docs do not give, and a resource-owner request (§4.3, `grant_type
/// = password`) is the usual one. Every pair sent must be valid and name the same source;
/// Basic and `client_secret` together are two client authentications (`invalid_request`).
fn decide(issuer: &Issuer, raw_params: &[u8], basic: Option<&[u8]>) -> Result<Granted, TokenError> {
    let mut grant_type = None;
    let mut client_id = None;
    let mut client_secret = None;
    let mut username = None;
    let mut password = None;
    let mut scope = None;
    for (name, value) in form_urlencoded::parse(raw_params) {
        let slot = match name.as_ref() {
            "grant_type" => &mut grant_type,
            "client_id" => &mut client_id,
            "client_secret" => &mut client_secret,
            "username" => &mut username,
            "password" => &mut password,
            "scope" => &mut scope,
            _ => continue,
        };
        // RFC 6749 §3.2: parameters must not be included more than once.
        if slot.replace(value.into_owned()).is_some() {
            return Err(TokenError::InvalidRequest);
        }
    }
    let check = |id: &Option<String>, secret: &str| -> Result<(String, String), TokenError> {
        let id = id.as_deref().ok_or(TokenError::InvalidClient)?;
        issuer
            .authenticate(id, secret.as_bytes())
            .map(|s| (s.to_owned(), id.to_owned()))
            .ok_or(TokenError::InvalidClient)
    };
    let client = match (basic, &client_secret) {
        (Some(_), Some(_)) => return Err(TokenError::InvalidRequest),
        (Some(pair), None) => Some(authenticate_basic(issuer, pair)?),
        (None, Some(secret)) => Some(check(&client_id, secret)?),
        (None, None) => None,
    };
    let owner = password
        .as_deref()
        .map(|p| check(&username, p))
        .transpose()?;
    let source = match (client, owner) {
        (Some(c), Some(o)) if c.0 != o.0 => return Err(TokenError::InvalidClient),
        (Some(c), _) => c,
        (None, Some(o)) => o,
        (None, None) => return Err(TokenError::InvalidClient),
    };
    let by_password = password.is_some();
    match grant_type.as_deref() {
        Some("client_credentials") => {}
        Some("password") if by_password => {}
        Some(_) => return Err(TokenError::UnsupportedGrantType),
        // ConnectSecure's Authentication URL sends credentials and nothing else; any client
        // that authenticated without naming a grant gets the one grant there is (the setup
        // docs call `grant_type` recommended, whichever way the client authenticates).
        None => {}
    }
    let (source, client_id) = source;
    let token = issuer
        .keys
        .issue(&source, &client_id, now_s())
        .ok_or(TokenError::InvalidClient)?;
    Ok(Granted {
        token,
        source,
        scope: scope.filter(|s| s.len() <= MAX_SCOPE_BYTES),
    })
}

/// Basic `id:secret`, tried as sent and then form-decoded (RFC 6749 §2.3.1 encodes both).
fn authenticate_basic(issuer: &Issuer, pair: &[u8]) -> Result<(String, String), TokenError> {
    let text = std::str::from_utf8(pair).map_err(|_| TokenError::InvalidClient)?;
    let (id, secret) = text.split_once(':').ok_or(TokenError::InvalidClient)?;
    if let Some(source) = issuer.authenticate(id, secret.as_bytes()) {
        return Ok((source.to_owned(), id.to_owned()));
    }
    let decode = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (decode(id), decode(secret));
    issuer
        .authenticate(&id, secret.as_bytes())
        .map(|source| (source.to_owned(), id))
        .ok_or(TokenError::InvalidClient)
}

fn error_response(error: TokenError, request_id: &RequestId) -> Response<Full<Bytes>> {
    let status = match error {
        TokenError::InvalidClient => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut response = json_response(status, &error_body(error, request_id), request_id);
    // RFC 6749 §5.2: a 401 carries the challenge of the scheme the client may use.
    if error == TokenError::InvalidClient {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(BASIC_CHALLENGE),
        );
    }
    response
}

/// RFC 6749 §5.2's `error`, with the gateway's `request_id` beside it.
fn error_body(error: TokenError, request_id: &RequestId) -> serde_json::Value {
    json!({ "error": error.code(), "request_id": request_id.0 })
}

/// A refusal made before the endpoint (a rate limit: 429; the in-flight cap: 503), answered
/// in RFC 6749 §5.2's shape as the endpoint's own errors are: `temporarily_unavailable`
/// (the code RFC 6749 gives a server that cannot answer now) with the refusal's sentence as
/// `error_description`, not cached. `refusal` keeps its status and `Retry-After`.
pub fn shed(refusal: &crate::respond::Failure, request_id: &RequestId) -> Response<Full<Bytes>> {
    let body = json!({
        "error": "temporarily_unavailable",
        "error_description": refusal.to_string(),
        "request_id": request_id.0,
    });
    let mut response = json_response(refusal.status(), &body, request_id);
    if let Some(after) = refusal.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs()));
    }
    response
}

fn json_response(
    status: StatusCode,
    body: &serde_json::Value,
    request_id: &RequestId,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    request_id.stamp(headers);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // RFC 6749 §5.1: token responses must not be cached.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::oauth::TokenKeys;
    use crate::config::Secret;

    fn issuer() -> Issuer {
        let keys = TokenKeys::new(&[Secret::new("0123456789abcdef0123456789abcdef")], 60);
        let mut i = Issuer::new(Arc::new(keys.unwrap()));
        i.add_client("hypr", "cid", &Secret::new("s&cret"));
        i
    }

    #[test]
    fn form_credentials_get_a_token_for_their_source() {
        let g = decide(
            &issuer(),
            b"grant_type=client_credentials&client_id=cid&client_secret=s%26cret&scope=a",
            None,
        )
        .unwrap();
        assert_eq!(g.source, "hypr");
        assert_eq!(g.scope.as_deref(), Some("a"));
    }

    #[test]
    fn basic_credentials_may_be_form_encoded() {
        let g = decide(
            &issuer(),
            b"grant_type=client_credentials",
            Some(b"cid:s%26cret"),
        );
        assert_eq!(g.unwrap().source, "hypr");
        let g = decide(&issuer(), b"", Some(b"cid:s&cret"));
        assert_eq!(
            g.unwrap().source,
            "hypr",
            "no grant_type with Basic: ConnectSecure"
        );
    }

    #[test]
    fn wrong_secret_is_invalid_client() {
        let e = decide(
            &issuer(),
            b"grant_type=client_credentials",
            Some(b"cid:nope"),
        );
        assert_eq!(e.unwrap_err(), TokenError::InvalidClient);
        let e = decide(&issuer(), b"grant_type=client_credentials", None);
        assert_eq!(e.unwrap_err(), TokenError::InvalidClient);
    }

    #[test]
    fn json_body_reads_as_form_parameters() {
        let mut h = http::HeaderMap::new();
        h.insert("content-type", "application/json".parse().unwrap());
        let form = as_form(&h, br#"{"grant_type":"client_credentials","scope":"a b"}"#).unwrap();
        let g = decide(&issuer(), &form, Some(b"cid:s&cret")).unwrap();
        assert_eq!(g.scope.as_deref(), Some("a b"));
        assert!(as_form(&h, br#"{"grant_type":1}"#).is_none());
        // A repeated key stays repeated, and so is refused like a repeated form parameter.
        let twice = as_form(
            &h,
            br#"{"username":"cid","password":"x","password":"s&cret"}"#,
        );
        let e = decide(&issuer(), &twice.unwrap(), None);
        assert_eq!(e.unwrap_err(), TokenError::InvalidRequest);
        assert_eq!(as_form(&http::HeaderMap::new(), b"a=b").unwrap(), b"a=b");
    }

    #[test]
    fn a_username_and_password_get_a_token_in_any_of_the_usual_shapes() {
        // ConnectSecure's Authentication URL: the format is undocumented, so the common ones.
        for params in [
            &b"username=cid&password=s%26cret"[..],
            b"grant_type=password&username=cid&password=s%26cret",
            b"grant_type=client_credentials&username=cid&password=s%26cret",
        ] {
            let g = decide(&issuer(), params, None);
            assert_eq!(g.unwrap().source, "hypr", "{params:?}");
        }
        let mut h = http::HeaderMap::new();
        h.insert("content-type", "application/json".parse().unwrap());
        let form = as_form(&h, br#"{"username":"cid","password":"s&cret"}"#).unwrap();
        assert_eq!(decide(&issuer(), &form, None).unwrap().source, "hypr");
        // Beside Basic (RFC 6749 §4.3 with client authentication): both must hold.
        let g = decide(
            &issuer(),
            b"username=cid&password=s%26cret",
            Some(b"cid:s&cret"),
        );
        assert_eq!(g.unwrap().source, "hypr");
        for (params, basic) in [
            (&b"username=cid&password=nope"[..], None),
            (b"username=nope&password=s%26cret", None),
            (b"password=s%26cret", None),
            (b"username=cid&password=nope", Some(&b"cid:s&cret"[..])),
            (b"username=cid&password=s%26cret", Some(b"cid:nope")),
        ] {
            let e = decide(&issuer(), params, basic);
            assert_eq!(e.unwrap_err(), TokenError::InvalidClient, "{params:?}");
        }
        // A username alone authenticates nothing, and says nothing of the grant.
        let e = decide(&issuer(), b"username=cid", None);
        assert_eq!(e.unwrap_err(), TokenError::InvalidClient);
    }

    #[test]
    fn other_grant_is_unsupported() {
        let e = decide(&issuer(), b"grant_type=password", Some(b"cid:s&cret"));
        assert_eq!(e.unwrap_err(), TokenError::UnsupportedGrantType);
    }

    #[test]
    fn repeated_parameter_or_two_auth_methods_is_invalid_request() {
        let e = decide(
            &issuer(),
            b"grant_type=client_credentials&grant_type=client_credentials",
            Some(b"cid:s&cret"),
        );
        assert_eq!(e.unwrap_err(), TokenError::InvalidRequest);
        let e = decide(&issuer(), b"client_secret=x", Some(b"cid:s&cret"));
        assert_eq!(e.unwrap_err(), TokenError::InvalidRequest);
    }

    #[test]
    fn parameters_without_grant_type_get_a_token_as_basic_does() {
        let granted = decide(&issuer(), b"client_id=cid&client_secret=s%26cret", None).unwrap();
        assert_eq!(granted.source, "hypr");
        let e = decide(&issuer(), b"client_id=cid&client_secret=wrong", None);
        assert_eq!(e.unwrap_err(), TokenError::InvalidClient);
        let e = decide(&issuer(), b"client_id=cid", None);
        assert_eq!(e.unwrap_err(), TokenError::InvalidClient);
    }
}

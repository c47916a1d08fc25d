//! One test per [`AuthError`] variant, each reached through a compiled [`Verifier`], plus the
//! rules every source follows (all schemes must pass, address first, answers).

use std::net::SocketAddr;
use std::path::Path;

use ::hmac::Mac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::*;

const SIGNING_KEY: &str = "0123456789abcdef0123456789abcdef";

fn config(sources: &str) -> Config {
    let text = format!(
        "[trust]\ntrusted_proxies = [\"127.0.0.1\"]\ntoken_signing_keys = [\"{SIGNING_KEY}\"]\n{sources}"
    );
    Config::from_toml(&text, Path::new("t.toml"), &["hoop".to_owned()]).unwrap()
}

/// Builds the verifier of the first source of a one-source config with `auth`.
fn verifier(auth: &str) -> (Verifier, Trust) {
    let c = config(&format!(
        "[[source]]\nname = \"s\"\nvendor = \"hoop\"\npath = \"/in\"\nauth = {auth}\n"
    ));
    let trust = Trust::build(&c).unwrap();
    let v = Verifier::build("s", &c.sources[0].auth, &trust).unwrap();
    (v, trust)
}

fn head<'a>(headers: &'a HeaderMap, client: &str, token: Option<&'a str>) -> Head<'a> {
    Head {
        headers,
        peer: SocketAddr::from(([127, 0, 0, 1], 1)),
        client: client.parse().unwrap(),
        path_token: token,
    }
}

fn hdr(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, v.parse().unwrap());
    }
    h
}

fn before(v: &Verifier, h: &HeaderMap) -> Result<(), AuthError> {
    check_before_body(v, head(h, "127.0.0.1", None)).map(|_| ())
}

/// A head as if its checks without a body had passed (to test the signature checks alone).
fn checked<'a>(headers: &'a HeaderMap) -> HeadChecked<'a> {
    HeadChecked(head(headers, "127.0.0.1", None))
}

const HMAC: &str = r#"[{ kind = "hmac", secrets = ["whsec_k"] }]"#;
const SVIX: &str = r#"[{ kind = "svix", secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] }]"#;

#[test]
fn missing_signature() {
    let (v, _) = verifier(HMAC);
    let e = verify(&v, &checked(&HeaderMap::new()), b"{}").unwrap_err();
    assert!(matches!(e, AuthError::MissingSignature));
    assert_eq!(e.code(), "signature_missing");
}

#[test]
fn malformed_signature() {
    let (v, _) = verifier(HMAC);
    let h = hdr(&[("x-hyprwatch-signature", "md5=abc")]);
    let e = verify(&v, &checked(&h), b"{}").unwrap_err();
    assert!(matches!(e, AuthError::MalformedSignature));
}

#[test]
fn bad_signature() {
    let (v, _) = verifier(HMAC);
    let h = hdr(&[(
        "x-hyprwatch-signature",
        &format!("sha256={}", "0".repeat(64)),
    )]);
    let e = verify(&v, &checked(&h), b"{}").unwrap_err();
    assert!(matches!(e, AuthError::BadSignature));
    assert_eq!(e.challenge(), None);
}

#[test]
fn timestamp_out_of_tolerance() {
    let (v, _) = verifier(SVIX);
    let h = hdr(&[
        ("svix-id", "msg_1"),
        ("svix-timestamp", "1000"),
        ("svix-signature", "v1,AAAA"),
    ]);
    let e = verify(&v, &checked(&h), b"{}").unwrap_err();
    assert!(matches!(e, AuthError::TimestampOutOfTolerance));
}

const BASIC: &str = r#"[{ kind = "basic", credentials = [{ username = "u", password = "p" }] }]"#;

fn basic(user_pass: &str) -> HeaderMap {
    hdr(&[(
        "authorization",
        &format!("Basic {}", STANDARD.encode(user_pass)),
    )])
}

#[test]
fn basic_missing_carries_the_basic_challenge() {
    let (v, _) = verifier(BASIC);
    let e = before(&v, &HeaderMap::new()).unwrap_err();
    assert!(matches!(e, AuthError::BasicMissing));
    assert_eq!(e.challenge(), Some("Basic realm=\"hookgate\""));
}

#[test]
fn basic_mismatch() {
    let (v, _) = verifier(BASIC);
    assert!(before(&v, &basic("u:p")).is_ok());
    let e = before(&v, &basic("u:wrong")).unwrap_err();
    assert!(matches!(e, AuthError::BasicMismatch));
    assert_eq!(e.challenge(), Some("Basic realm=\"hookgate\""));
}

const BEARER: &str = r#"[{ kind = "bearer", tokens = ["key-1"] }]"#;

#[test]
fn api_key_missing() {
    let (v, _) = verifier(BEARER);
    let e = before(&v, &HeaderMap::new()).unwrap_err();
    assert!(matches!(e, AuthError::ApiKeyMissing { .. }));
    assert_eq!(e.challenge(), Some("Bearer realm=\"hookgate\""));
}

#[test]
fn api_key_mismatch() {
    let (v, _) = verifier(BEARER);
    assert!(before(&v, &hdr(&[("authorization", "Bearer key-1")])).is_ok());
    let e = before(&v, &hdr(&[("authorization", "Bearer key-2")])).unwrap_err();
    assert!(matches!(e, AuthError::ApiKeyMismatch { .. }));
}

const HEADER: &str = r#"[{ kind = "header", name = "X-CS-Key", values = ["v"] }]"#;

#[test]
fn header_missing() {
    let (v, _) = verifier(HEADER);
    let e = before(&v, &HeaderMap::new()).unwrap_err();
    assert!(matches!(e, AuthError::HeaderMissing));
    assert_eq!(e.challenge(), None);
}

#[test]
fn header_mismatch() {
    let (v, _) = verifier(HEADER);
    let e = before(&v, &hdr(&[("x-cs-key", "w")])).unwrap_err();
    assert!(matches!(e, AuthError::HeaderMismatch));
}

const OAUTH: &str =
    r#"[{ kind = "oauth", clients = [{ client_id = "c", client_secret = "secret" }] }]"#;

#[test]
fn token_missing() {
    let (v, _) = verifier(OAUTH);
    let e = before(&v, &HeaderMap::new()).unwrap_err();
    assert!(matches!(e, AuthError::TokenMissing));
    assert_eq!(e.challenge(), Some("Bearer realm=\"hookgate\""));
}

#[test]
fn token_invalid() {
    let (v, _) = verifier(OAUTH);
    let e = before(&v, &hdr(&[("authorization", "Bearer hgt1.abc.def")])).unwrap_err();
    assert!(matches!(e, AuthError::TokenInvalid));
    assert!(e.challenge().unwrap().contains("invalid_token"));
}

#[test]
fn token_expired() {
    let (v, trust) = verifier(OAUTH);
    let keys = &trust.issuer.as_ref().unwrap().keys;
    let token = keys.issue("s", "c", oauth::now_s() - 10_000).unwrap();
    let e = before(&v, &hdr(&[("authorization", &format!("Bearer {token}"))])).unwrap_err();
    assert!(matches!(e, AuthError::TokenExpired));
}

#[test]
fn token_wrong_source() {
    let (v, trust) = verifier(OAUTH);
    let issuer = trust.issuer.as_ref().unwrap();
    assert_eq!(issuer.authenticate("c", b"secret"), Some("s"));
    let token = issuer.keys.issue("other", "c", oauth::now_s()).unwrap();
    let e = before(&v, &hdr(&[("authorization", &format!("Bearer {token}"))])).unwrap_err();
    assert!(matches!(e, AuthError::TokenWrongSource));
    let good = issuer.keys.issue("s", "c", oauth::now_s()).unwrap();
    assert!(before(&v, &hdr(&[("authorization", &format!("Bearer {good}"))])).is_ok());
    assert!(before(&v, &hdr(&[("authorization", &format!("bearer  {good} "))])).is_ok());
    // RFC 6750 §2.1: the token travels under the Bearer scheme; bare, it is no token at all.
    for bare in [
        good.clone(),
        format!("Token {good}"),
        format!("Basic {good}"),
    ] {
        let e = before(&v, &hdr(&[("authorization", &bare)])).unwrap_err();
        assert!(matches!(e, AuthError::TokenMissing), "{bare}");
    }
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn path_token_mismatch() {
    let (v, _) = verifier(&format!(
        r#"[{{ kind = "path_token", tokens = ["{TOKEN}"] }}]"#
    ));
    assert!(v.takes_path_token());
    let h = HeaderMap::new();
    assert!(check_before_body(&v, head(&h, "127.0.0.1", Some(TOKEN))).is_ok());
    let e = check_before_body(&v, head(&h, "127.0.0.1", Some("x"))).unwrap_err();
    assert!(matches!(e, AuthError::PathTokenMismatch));
    assert!(!e.is_forbidden());
}

#[test]
fn address_not_allowed_is_forbidden_and_checked_first() {
    // The allowlist is listed last but runs first: a refused address is a 403 whatever
    // credentials it sends.
    let (v, _) = verifier(
        r#"[{ kind = "basic", credentials = [{ username = "u", password = "p" }] }, { kind = "ip_allow", allow = ["hyperproof"] }]"#,
    );
    let e = check_before_body(&v, head(&HeaderMap::new(), "192.0.2.1", None)).unwrap_err();
    assert!(matches!(e, AuthError::AddressNotAllowed));
    assert!(e.is_forbidden());
    assert_eq!(e.challenge(), None);
    let e = check_before_body(&v, head(&HeaderMap::new(), "52.9.169.38", None)).unwrap_err();
    assert!(matches!(e, AuthError::BasicMissing));
    assert!(check_before_body(&v, head(&basic("u:p"), "52.9.169.38", None)).is_ok());
}

#[test]
fn every_scheme_must_pass() {
    let (v, _) = verifier(&format!(
        r#"[{{ kind = "header", name = "X-CS-Key", values = ["v"] }}, {}]"#,
        HMAC.trim_start_matches('[').trim_end_matches(']')
    ));
    let body = b"{}";
    let mut mac = ::hmac::Hmac::<sha2::Sha256>::new_from_slice(b"whsec_k").unwrap();
    mac.update(body);
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let both = hdr(&[("x-cs-key", "v"), ("x-hyprwatch-signature", &sig)]);
    assert!(before(&v, &both).is_ok());
    let auth = verify(&v, &checked(&both), body).unwrap();
    assert_eq!(auth.scheme, "header");
    let only_sig = hdr(&[("x-hyprwatch-signature", &sig)]);
    assert!(before(&v, &only_sig).is_err());
}

#[test]
fn with_several_credentials_every_401_carries_the_same_challenge_whichever_check_failed() {
    // ConnectSecure's setup: a static header and Basic. Before, only a request whose header
    // was right met the Basic challenge, which told a guesser the header value was right.
    let (v, _) = verifier(
        r#"[{ kind = "header", name = "X-Hookgate-Key", values = ["right"] }, { kind = "basic", credentials = [{ username = "u", password = "p" }] }]"#,
    );
    let wrong_header = before(&v, &hdr(&[("x-hookgate-key", "wrong")])).unwrap_err();
    let right_header = before(&v, &hdr(&[("x-hookgate-key", "right")])).unwrap_err();
    for e in [&wrong_header, &right_header] {
        assert_eq!(e.challenge(), Some(credentials::BASIC_CHALLENGE));
        assert!(!e.is_forbidden());
        assert!(!e.to_string().is_empty());
    }
    // Logs and metrics still name the check that failed.
    assert_eq!(wrong_header.code(), "header_mismatch");
    assert_eq!(right_header.code(), "basic_missing");
    // Signatures checked after the body answer alike too.
    let (v, _) = verifier(&format!(
        r#"[{{ kind = "bearer", tokens = ["t"] }}, {}]"#,
        HMAC.trim_start_matches('[').trim_end_matches(']')
    ));
    let auth = hdr(&[("authorization", "Bearer t")]);
    let e = verify(&v, &checked(&auth), b"{}").unwrap_err();
    assert_eq!(
        (e.code(), e.challenge()),
        ("signature_missing", Some("Bearer realm=\"hookgate\""))
    );
    // One credential check: its own failure picks the challenge (nothing to tell apart).
    let (v, _) = verifier(r#"[{ kind = "header", name = "X-Hookgate-Key", values = ["right"] }]"#);
    let e = before(&v, &HeaderMap::new()).unwrap_err();
    assert!(matches!(e, AuthError::HeaderMissing));
    assert_eq!(e.challenge(), None);
}

#[test]
fn oauth_without_signing_key_does_not_compile() {
    let c = Config::from_toml(
        &format!("[[source]]\nname = \"s\"\nvendor = \"hoop\"\npath = \"/in\"\nauth = {OAUTH}\n"),
        Path::new("t.toml"),
        &["hoop".to_owned()],
    );
    let text = c.unwrap_err().to_string();
    assert!(text.contains("source[s].auth[0].kind"), "{text}");
    assert!(
        !text.contains("secret\""),
        "no secret value in messages: {text}"
    );
}

#[test]
fn config_problems_name_each_weak_setting() {
    let text = r#"[trust]
trusted_proxies = ["10.0.0.0/33"]
token_signing_keys = ["short"]
[[source]]
name = "s"
vendor = "hoop"
path = "/in"
auth = [
  { kind = "svix", secrets = ["whsec_***"] },
  { kind = "path_token", tokens = ["guessable"] },
  { kind = "ip_allow", allow = ["hyperproof-moon"] },
  { kind = "basic", credentials = [{ username = "a:b", password = "p" }] },
]
"#;
    let err = Config::from_toml(text, Path::new("t.toml"), &["hoop".to_owned()]).unwrap_err();
    let text = err.to_string();
    for key in [
        "trust.trusted_proxies",
        "trust.token_signing_keys",
        "source[s].auth[0].secrets",
        "source[s].auth[1].tokens",
        "source[s].auth[2].allow",
        "source[s].auth[3].credentials",
    ] {
        assert!(text.contains(key), "missing {key} in {text}");
    }
}

#[test]
fn two_schemes_reading_one_header_are_a_problem() {
    // A header named Authorization (the vendor form's suggestion) beside Basic: no request
    // can carry both, so `check` says so instead of a source that refuses everything.
    let config = |auth: &str| {
        Config::from_toml(
            &format!(
                "[[source]]\nname = \"s\"\nvendor = \"hoop\"\npath = \"/in\"\nauth = {auth}\n"
            ),
            Path::new("t.toml"),
            &["hoop".to_owned()],
        )
    };
    let err = config(
        r#"[{ kind = "header", name = "Authorization", values = ["Token abc"] }, { kind = "basic", credentials = [{ username = "u", password = "p" }] }]"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("source[s].auth[1]") && err.contains("as auth[0] does"),
        "{err}"
    );
    let err = config(
        r#"[{ kind = "bearer", header = "X-Key", tokens = ["a"] }, { kind = "header", name = "x-key", values = ["b"] }]"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("\"x-key\" header"), "{err}");
    // Different headers are fine.
    assert!(config(
        r#"[{ kind = "header", name = "X-Hookgate-Key", values = ["v"] }, { kind = "basic", credentials = [{ username = "u", password = "p" }] }]"#,
    )
    .is_ok());
}

#[test]
fn oauth_client_id_shared_by_two_sources_is_a_problem() {
    let text = format!(
        "[trust]\ntoken_signing_keys = [\"{SIGNING_KEY}\"]\n[[source]]\nname = \"a\"\nvendor = \"hoop\"\npath = \"/a\"\nauth = {OAUTH}\n[[source]]\nname = \"b\"\nvendor = \"hoop\"\npath = \"/b\"\nauth = {OAUTH}\n"
    );
    let err = Config::from_toml(&text, Path::new("t.toml"), &["hoop".to_owned()]).unwrap_err();
    assert!(
        err.to_string().contains("source[b].auth[0].clients"),
        "{err}"
    );
}

#[test]
fn every_toml_snippet_in_vendor_setup_doc_loads_and_compiles() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/vendor-setup.md"))
        .unwrap();
    // One value that fits every secret kind: 32 hex digits is valid base64, 128 bits, 32 bytes.
    let env = regex::Regex::new(r#"\$\{[A-Z_]+\}"#).unwrap();
    let catalog = crate::parse::Catalog::load(None).unwrap();
    let mut checked = 0;
    for block in doc.split("```toml\n").skip(1) {
        let snippet = block.split("```").next().unwrap();
        let snippet = env.replace_all(snippet, "0123456789abcdef0123456789abcdef");
        // HYPR snippets show only the `auth` line of a source.
        let text = if snippet.trim_start().starts_with("auth") {
            format!("[[source]]\nname = \"s\"\nvendor = \"hypr\"\npath = \"/in\"\n{snippet}")
        } else if !snippet.contains("[[source]]") {
            format!("{snippet}\n[[source]]\nname = \"s\"\nvendor = \"hypr\"\npath = \"/in\"\nauth = [{{ kind = \"none\" }}]\n")
        } else {
            snippet.into_owned()
        };
        let config = Config::from_toml(&text, Path::new("doc"), &catalog.names())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        crate::app::build_runtime(&config, &catalog).unwrap();
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} snippets found");
}

/// A header a credential check reads, sent twice (the right value and another, in either
/// order, or the right one twice), is refused before any check picks a copy: for every
/// scheme that reads a header, and in both Svix header families. Once, it passes.
#[test]
fn credential_repeated() {
    let basic_ok = format!("Basic {}", STANDARD.encode("u:p"));
    let cases: [(&str, &'static str, &str); 5] = [
        (BASIC, "authorization", &basic_ok),
        (BEARER, "authorization", "Bearer key-1"),
        (HEADER, "x-cs-key", "v"),
        (HMAC, "x-hyprwatch-signature", "sha256=00"),
        (SVIX, "webhook-signature", "v1,AA=="),
    ];
    for (auth, name, right) in cases {
        let (v, _) = verifier(auth);
        for pair in [[right, "other"], ["other", right], [right, right]] {
            let h = hdr(&[(name, pair[0]), (name, pair[1])]);
            let e = before(&v, &h).unwrap_err();
            assert!(
                matches!(e, AuthError::CredentialRepeated { .. }),
                "{auth} {e:?}"
            );
            assert_eq!(e.code(), "credential_repeated");
            assert!(!e.is_forbidden());
        }
    }
    // The scheme's own challenge stays on the 401; once is fine.
    let (v, _) = verifier(BASIC);
    let e = before(
        &v,
        &hdr(&[("authorization", &basic_ok), ("authorization", &basic_ok)]),
    )
    .unwrap_err();
    assert_eq!(e.challenge(), Some("Basic realm=\"hookgate\""));
    assert!(before(&v, &hdr(&[("authorization", &basic_ok)])).is_ok());
    // An address refusal still comes first (403).
    let (v, _) = verifier(
        r#"[{ kind = "basic", credentials = [{ username = "u", password = "p" }] }, { kind = "ip_allow", allow = ["hyperproof"] }]"#,
    );
    let twice = hdr(&[("authorization", &basic_ok), ("authorization", &basic_ok)]);
    let e = check_before_body(&v, head(&twice, "192.0.2.1", None)).unwrap_err();
    assert!(matches!(e, AuthError::AddressNotAllowed));
}

/// A request's facts may reach a log line through `{:?}`: no credential or path token then.
#[test]
fn debug_of_a_head_shows_no_credential() {
    let h = hdr(&[
        ("authorization", "Bearer s3cr3t-value"),
        ("x-api-key", "k3y-value"),
    ]);
    let text = format!("{:?}", head(&h, "10.0.0.1", Some("path-t0ken")));
    for secret in ["s3cr3t-value", "k3y-value", "path-t0ken"] {
        assert!(!text.contains(secret), "{text}");
    }
    assert!(
        text.contains("authorization") && text.contains("***"),
        "{text}"
    );
}

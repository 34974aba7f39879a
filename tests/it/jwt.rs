//! Access tokens over HTTP: every token the server did not issue, or no longer honours,
//! is the same 401 problem+json, and appends nothing. The forged tokens are signed with
//! the server's own key, read from its data directory, so each case differs from a valid
//! token in exactly one way (a control token built the same way is accepted).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Client, TestServer};

/// The server's newest signing key: (kid, secret).
fn server_key(app: &TestServer) -> (String, Vec<u8>) {
    let tree = app
        .server
        .log()
        .db()
        .open_tree("secrets")
        .expect("the secrets tree");
    let stored = tree
        .get(b"jwt_keyring")
        .expect("reading the keyring")
        .expect("a keyring");
    let keys: Vec<Value> = serde_json::from_slice(&stored).expect("keyring JSON");
    let newest = keys
        .iter()
        .max_by_key(|k| k["created_at"].as_i64())
        .expect("a key");
    let secret = URL_SAFE_NO_PAD
        .decode(newest["secret"].as_str().unwrap())
        .expect("base64url secret");
    (newest["kid"].as_str().unwrap().to_owned(), secret)
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, secret: &[u8]) -> String {
    let header = Header {
        kid: kid.map(str::to_owned),
        ..Header::new(alg)
    };
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("signing")
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// The claims of `token`, decoded without verification.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Calls a read and a write with `authorization` (none when `None`); both must be 401
/// problem+json.
async fn expect_401(app: &TestServer, admin_id: &str, what: &str, authorization: Option<String>) {
    {
        let client = app.anonymous();
        for (method, path, body) in [
            (Method::GET, "/api/v1/auth/me".to_owned(), None),
            (Method::GET, "/api/v1/admins".to_owned(), None),
            (
                Method::PATCH,
                format!("/api/v1/admins/{admin_id}"),
                Some(json!({"username": "renamed"})),
            ),
        ] {
            let mut builder = client.request(method.clone(), &path);
            if let Some(value) = &authorization {
                builder = builder.header("authorization", value);
            }
            if let Some(body) = &body {
                builder = builder.json(body);
            }
            let res = client.send(builder).await;
            assert_eq!(res.status, 401, "{what}: {method} {path}: {}", res.text);
            res.problem(401);
        }
    }
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

struct Setup {
    app: TestServer,
    admin: Client,
    admin_id: String,
    claims: Value,
    kid: String,
    secret: Vec<u8>,
}

async fn setup() -> Setup {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "acme").await;
    let claims = claims_of(admin.token.as_deref().unwrap());
    let admin_id = claims["sub"].as_str().unwrap().to_owned();
    let (kid, secret) = server_key(&app);
    Setup {
        app,
        admin,
        admin_id,
        claims,
        kid,
        secret,
    }
}

#[tokio::test]
async fn a_token_signed_like_the_servers_is_accepted() {
    let s = setup().await;
    // The control for every forgery below: same key, same claims, fresh jti.
    let mut claims = s.claims.clone();
    claims["jti"] = json!("control");
    let token = sign(Algorithm::HS256, Some(&s.kid), &claims, &s.secret);
    let mut client = s.admin.clone();
    client.token = Some(token);
    let me = client.get("/api/v1/auth/me").await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["id"], s.admin_id);
    s.app.stop().await;
}

#[tokio::test]
async fn expired_tampered_foreign_and_unsigned_tokens_are_401() {
    let s = setup().await;
    let (app, id) = (&s.app, s.admin_id.as_str());
    let head = app.head();
    let now = s.claims["iat"].as_i64().unwrap();
    let token = s.admin.token.clone().unwrap();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = s.claims.clone();
        change(&mut claims);
        claims
    };

    // Expired: signed by the server's key, but past `exp`.
    let expired = with(&|c| {
        c["iat"] = json!(now - 1000);
        c["exp"] = json!(now - 1);
    });
    let expired = sign(Algorithm::HS256, Some(&s.kid), &expired, &s.secret);
    expect_401(app, id, "expired", bearer(&expired)).await;

    // Tampered payload: the server's signature over other claims (a tenant admin claiming
    // to be root, and a later expiry).
    let parts: Vec<&str> = token.split('.').collect();
    for forged in [
        with(&|c| c["tenant"] = json!("root")),
        with(&|c| c["exp"] = json!(now + 10 * 365 * 86_400)),
    ] {
        let tampered = format!("{}.{}.{}", parts[0], b64(&forged), parts[2]);
        expect_401(app, id, "tampered payload", bearer(&tampered)).await;
    }
    // A tampered signature.
    let mut signature = parts[2].to_owned();
    let last = if signature.ends_with('A') { "B" } else { "A" };
    signature.replace_range(signature.len() - 1.., last);
    let flipped = format!("{}.{}.{signature}", parts[0], parts[1]);
    expect_401(app, id, "tampered signature", bearer(&flipped)).await;

    // Wrong key under the server's kid.
    let wrong = sign(Algorithm::HS256, Some(&s.kid), &s.claims, &[7u8; 32]);
    expect_401(app, id, "wrong key", bearer(&wrong)).await;

    // `alg: none` (unsigned), in its spellings, with and without a signature part.
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": s.kid});
        for signature in ["", parts[2]] {
            let unsigned = format!("{}.{}.{signature}", b64(&header), b64(&s.claims));
            expect_401(app, id, &format!("alg {alg}"), bearer(&unsigned)).await;
        }
    }
    // Another HMAC algorithm with the right secret: one algorithm only.
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let other = sign(alg, Some(&s.kid), &s.claims, &s.secret);
        expect_401(app, id, &format!("{alg:?}"), bearer(&other)).await;
    }

    // Wrong or missing kid with the right secret.
    let unknown_kid = sign(Algorithm::HS256, Some("not-a-kid"), &s.claims, &s.secret);
    expect_401(app, id, "unknown kid", bearer(&unknown_kid)).await;
    let no_kid = sign(Algorithm::HS256, None, &s.claims, &s.secret);
    expect_401(app, id, "no kid", bearer(&no_kid)).await;

    assert_eq!(app.head(), head, "refused tokens appended events");
    s.app.stop().await;
}

#[tokio::test]
async fn validly_signed_claims_must_still_name_a_live_admin_of_that_tenant() {
    let s = setup().await;
    let app = &s.app;
    let root = app.root().await;
    let (other_tenant, _) = app.tenant_with_admin(&root, "other").await;
    let head = app.head();
    let signed = |change: &dyn Fn(&mut Value)| {
        let mut claims = s.claims.clone();
        change(&mut claims);
        bearer(&sign(Algorithm::HS256, Some(&s.kid), &claims, &s.secret))
    };
    let id = s.admin_id.as_str();
    // The admin claiming root, or another tenant.
    expect_401(
        app,
        id,
        "claims root",
        signed(&|c| c["tenant"] = json!("root")),
    )
    .await;
    let other = other_tenant["id"].clone();
    expect_401(
        app,
        id,
        "claims another tenant",
        signed(&|c| c["tenant"] = other.clone()),
    )
    .await;
    // An admin that does not exist, and a subject that is no admin id at all.
    expect_401(
        app,
        id,
        "unknown admin",
        signed(&|c| c["sub"] = json!("adm_01HF7YAT00000000000000001A")),
    )
    .await;
    expect_401(
        app,
        id,
        "not an admin id",
        signed(&|c| c["sub"] = json!("admin")),
    )
    .await;
    // Claims of the wrong shape.
    expect_401(
        app,
        id,
        "exp as text",
        signed(&|c| c["exp"] = json!("never")),
    )
    .await;
    expect_401(
        app,
        id,
        "no sub",
        signed(&|c| drop(c.as_object_mut().unwrap().remove("sub"))),
    )
    .await;
    assert_eq!(app.head(), head);

    // A removed admin's token stops working at once, not when it expires.
    let res = root.delete(&format!("/api/v1/admins/{id}")).await;
    assert_eq!(res.status, 204, "{}", res.text);
    let token = s.admin.token.clone().unwrap();
    expect_401(app, id, "removed admin", bearer(&token)).await;
    s.app.stop().await;
}

#[tokio::test]
async fn a_missing_or_malformed_authorization_header_is_401() {
    let s = setup().await;
    let (app, id) = (&s.app, s.admin_id.as_str());
    let head = app.head();
    let token = s.admin.token.clone().unwrap();
    expect_401(app, id, "no header", None).await;
    for value in [
        String::new(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Basic {token}"),
        format!("Token {token}"),
        token.clone(),
        "Bearer not-a-jwt".to_owned(),
        "Bearer a.b.c".to_owned(),
        format!("Bearer {token}x"),
    ] {
        expect_401(
            app,
            id,
            &format!("authorization {value:?}"),
            Some(value.clone()),
        )
        .await;
    }
    assert_eq!(app.head(), head);
    // The genuine header still works, the scheme in any case.
    let me = app
        .anonymous()
        .send(
            app.anonymous()
                .request(Method::GET, "/api/v1/auth/me")
                .header("authorization", format!("bearer {token}")),
        )
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    s.app.stop().await;
}

#[tokio::test]
async fn a_token_expires_by_the_servers_clock() {
    let s = setup().await;
    let head = s.app.head();
    let me = s.admin.get("/api/v1/auth/me").await;
    assert_eq!(me.status, 200, "{}", me.text);
    let ttl = s.claims["exp"].as_i64().unwrap() - s.claims["iat"].as_i64().unwrap();
    s.app.clock.advance_secs(ttl);
    expect_401(
        &s.app,
        &s.admin_id,
        "expired by the clock",
        s.admin.token.as_deref().and_then(bearer),
    )
    .await;
    assert_eq!(s.app.head(), head);
    s.app.stop().await;
}

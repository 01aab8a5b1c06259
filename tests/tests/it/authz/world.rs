//! The people and wallets of the authorization tests, and requests made as a chosen
//! principal (the tests library's `request` picks one for you; these tests must not).

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use uuid::Uuid;
use wallet_hub_tests::TestApp;

pub const DEPOSIT_SCOPE: &str = "wallets:deposit";
pub const ADMIN_SCOPE: &str = "wallets:admin";
/// The subject of [`processor_token`].
pub const PROCESSOR: &str = "payment-processor";
/// The subject of [`admin_token`].
pub const ADMIN: &str = "risk-ops";

/// The payment processor's service client: deposits into any wallet, nothing else.
pub fn processor_token(app: &TestApp) -> String {
    app.token(PROCESSOR, &[DEPOSIT_SCOPE])
}

/// Risk and operations: freezes, unfreezes, reads anything.
pub fn admin_token(app: &TestApp) -> String {
    app.token(ADMIN, &[ADMIN_SCOPE])
}

/// A registered user: its token's subject, its user id, and the token (no scopes).
#[derive(Debug, Clone)]
pub struct Party {
    pub subject: String,
    pub id: Uuid,
    pub token: String,
}

impl Party {
    /// A new principal (`name` plus a unique suffix) that registers itself.
    pub async fn register(app: &TestApp, name: &str) -> Self {
        let subject = format!("{name}-{}", Uuid::now_v7().simple());
        let token = app.token(&subject, &[]);
        let reply = Call::post("/v1/users")
            .bearer(&token)
            .json(json!({"email": format!("{subject}@example.com"), "name": name}))
            .send(app)
            .await;
        assert_eq!(reply.status, 201, "{name} registers: {reply:?}");
        let id = reply.body["id"]
            .as_str()
            .expect("user id")
            .parse()
            .expect("uuid");
        Self { subject, id, token }
    }

    /// Places a hold of 1.00 on `wallet` of this party for an hour; returns its id.
    pub async fn place_hold(&self, app: &TestApp, wallet: &str) -> String {
        let reply = Call::post(&format!("/v1/wallets/{wallet}/holds"))
            .bearer(&self.token)
            .json(json!({"amount": "1.00", "expires_in_seconds": 3600}))
            .send(app)
            .await;
        assert_eq!(reply.status, 201, "hold placed: {reply:?}");
        reply.body["id"].as_str().expect("hold id").to_owned()
    }

    /// Opens a USD wallet of this party and returns its id.
    pub async fn open_wallet(&self, app: &TestApp) -> String {
        let reply = Call::post("/v1/wallets")
            .bearer(&self.token)
            .json(json!({"name": "Main", "currency": "USD"}))
            .send(app)
            .await;
        assert_eq!(reply.status, 201, "wallet opened: {reply:?}");
        reply.body["id"].as_str().expect("wallet id").to_owned()
    }
}

/// Alice owns `funded` (10.00 USD, of which `holds` reserve 1.00 each) and `empty`; Bob
/// owns `bobs`.
#[derive(Debug)]
pub struct World {
    pub alice: Party,
    pub bob: Party,
    pub funded: String,
    pub empty: String,
    pub bobs: String,
    /// Two pending holds on `funded`: one to capture, one to void.
    pub holds: [String; 2],
}

impl World {
    pub async fn build(app: &TestApp) -> Self {
        let alice = Party::register(app, "alice").await;
        let bob = Party::register(app, "bob").await;
        let funded = alice.open_wallet(app).await;
        let empty = alice.open_wallet(app).await;
        let bobs = bob.open_wallet(app).await;
        deposit(app, &funded, "10.00").await;
        let holds = [
            alice.place_hold(app, &funded).await,
            alice.place_hold(app, &funded).await,
        ];
        Self {
            alice,
            bob,
            funded,
            empty,
            bobs,
            holds,
        }
    }
}

/// A deposit by the payment processor that must succeed.
pub async fn deposit(app: &TestApp, wallet: &str, amount: &str) {
    let reply = Call::post(&format!("/v1/wallets/{wallet}/deposits"))
        .bearer(&processor_token(app))
        .json(json!({"amount": amount}))
        .send(app)
        .await;
    assert_eq!(reply.status, 201, "deposit: {reply:?}");
}

/// A wallet as the admin reads it.
pub async fn wallet(app: &TestApp, wallet: &str) -> Value {
    let reply = Call::get(&format!("/v1/wallets/{wallet}"))
        .bearer(&admin_token(app))
        .send(app)
        .await;
    assert_eq!(reply.status, 200, "wallet read: {reply:?}");
    reply.body
}

/// One request, with exactly the credentials and headers the test gives.
#[derive(Debug, Clone)]
pub struct Call {
    method: Method,
    path: String,
    token: Option<String>,
    body: Option<Value>,
    key: Option<String>,
}

impl Call {
    pub fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            token: None,
            body: None,
            key: None,
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn post(path: &str) -> Self {
        Self::new(Method::POST, path)
    }

    pub fn bearer(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn idempotency_key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }

    pub fn has_body(&self) -> bool {
        self.body.is_some()
    }

    pub async fn send(&self, app: &TestApp) -> Reply {
        let mut request = app.client.request(self.method.clone(), app.url(&self.path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = &self.key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = &self.body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The last segment of a problem's `type` URI (`not-found`), or "" for other bodies.
    pub fn problem(&self) -> &str {
        self.body["type"]
            .as_str()
            .and_then(|t| t.rsplit('/').next())
            .unwrap_or_default()
    }

    /// The `WWW-Authenticate` challenge, or "" without one.
    pub fn challenge(&self) -> &str {
        self.header("www-authenticate")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

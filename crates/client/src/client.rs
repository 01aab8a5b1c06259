//! [`Client`]: one method per operation of the API.

use std::fmt;

use domain::{UserId, WalletId};
use reqwest::header::{AUTHORIZATION, HeaderValue, IF_MATCH, IF_NONE_MATCH, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{Error, Problem, ProblemResponse};
use crate::idempotency::IdempotencyKey;
use crate::reply::{self, Reply};
use crate::types::{
    Activity, Amount, CreateTransfer, CreateUser, CreateWallet, HistoryItem, Movement,
    Notification, Page, PageRequest, RiskAlert, Transfer, User, VolumeMinute, VolumeRange, Wallet,
};

const IDEMPOTENCY_KEY: &str = "idempotency-key";
const CORRELATION_ID: &str = "x-correlation-id";
const TRACEPARENT: &str = "traceparent";

/// A client of one Wallet Hub, acting as one principal (its bearer token) or none.
///
/// Cheap to clone: clones share the connection pool. [`Client::with_token`] makes a client
/// of the same service acting as another principal.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Always ends with `/`, so that operation paths join under it.
    base: Url,
    token: Option<SecretString>,
    /// `X-Correlation-Id` and `traceparent` sent with every request, if set.
    correlation_id: Option<String>,
    traceparent: Option<String>,
    /// `If-Match` sent with every change (not with reads), if set.
    if_match: Option<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("correlation_id", &self.correlation_id)
            .field("traceparent", &self.traceparent)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:8080`), without a token.
    pub fn new(base: &str) -> Result<Self, url::ParseError> {
        Self::with_http_client(reqwest::Client::new(), base)
    }

    /// As [`Client::new`], over a `reqwest::Client` of the caller's (timeouts, TLS roots,
    /// proxies).
    pub fn with_http_client(http: reqwest::Client, base: &str) -> Result<Self, url::ParseError> {
        let mut base = Url::parse(base)?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Self {
            http,
            base,
            token: None,
            correlation_id: None,
            traceparent: None,
            if_match: None,
        })
    }

    /// This client sending `X-Correlation-Id: id` with every request: the server logs it
    /// and puts it on the events the request causes (else it makes one up).
    #[must_use]
    pub fn with_correlation_id(&self, id: impl Into<String>) -> Self {
        Self {
            correlation_id: Some(id.into()),
            ..self.clone()
        }
    }

    /// This client sending a W3C `traceparent` with every request: the request's spans and
    /// events continue that trace.
    #[must_use]
    pub fn with_traceparent(&self, traceparent: impl Into<String>) -> Self {
        Self {
            traceparent: Some(traceparent.into()),
            ..self.clone()
        }
    }

    /// This client sending `If-Match: <etag>` with every change (a wallet's `ETag`, as
    /// [`Reply::etag`] gave it): a change to a wallet that changed since is refused with 412
    /// `precondition-failed` and changes nothing.
    #[must_use]
    pub fn with_if_match(&self, etag: impl Into<String>) -> Self {
        Self {
            if_match: Some(etag.into()),
            ..self.clone()
        }
    }

    /// This client acting as the principal of the bearer `token`.
    #[must_use]
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            token: Some(SecretString::from(token.into())),
            ..self.clone()
        }
    }

    /// The API's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `POST /v1/users`: registers the caller as a user; `Location` names it.
    pub async fn create_user(
        &self,
        user: &CreateUser,
        key: Option<&IdempotencyKey>,
    ) -> Result<Reply<User>, Error> {
        let request = self.request("create user", Method::POST, "v1/users", &[])?;
        self.send("create user", idempotent(request, key).json(user))
            .await
    }

    /// `GET /v1/users/{id}`.
    pub async fn get_user(&self, id: UserId) -> Result<Reply<User>, Error> {
        let path = format!("v1/users/{id}");
        let request = self.request("get user", Method::GET, &path, &[])?;
        self.send("get user", request).await
    }

    /// `GET /v1/users/{id}/wallets`: the user's wallets, oldest first.
    pub async fn list_wallets(
        &self,
        user: UserId,
        page: &PageRequest,
    ) -> Result<Reply<Page<Wallet>>, Error> {
        let path = format!("v1/users/{user}/wallets");
        let request = self.request("list wallets", Method::GET, &path, &page.query())?;
        self.send("list wallets", request).await
    }

    /// `GET /v1/users/{id}/notifications`: the user's notifications, newest first.
    pub async fn list_notifications(
        &self,
        user: UserId,
        page: &PageRequest,
    ) -> Result<Reply<Page<Notification>>, Error> {
        let path = format!("v1/users/{user}/notifications");
        let request = self.request("list notifications", Method::GET, &path, &page.query())?;
        self.send("list notifications", request).await
    }

    /// `POST /v1/wallets`: a wallet of the caller's user; `Location` names it.
    pub async fn create_wallet(
        &self,
        wallet: &CreateWallet,
        key: Option<&IdempotencyKey>,
    ) -> Result<Reply<Wallet>, Error> {
        let request = self.request("create wallet", Method::POST, "v1/wallets", &[])?;
        self.send("create wallet", idempotent(request, key).json(wallet))
            .await
    }

    /// `GET /v1/wallets/{id}`.
    pub async fn get_wallet(&self, id: WalletId) -> Result<Reply<Wallet>, Error> {
        let path = format!("v1/wallets/{id}");
        let request = self.request("get wallet", Method::GET, &path, &[])?;
        self.send("get wallet", request).await
    }

    /// `GET /v1/wallets/{id}` with `If-None-Match: <etag>`: `None` when the wallet is still
    /// at that version (304 Not Modified), else the wallet and its new `ETag`.
    pub async fn get_wallet_if_changed(
        &self,
        id: WalletId,
        etag: &str,
    ) -> Result<Option<Reply<Wallet>>, Error> {
        let path = format!("v1/wallets/{id}");
        let request = self
            .request("get wallet", Method::GET, &path, &[])?
            .header(IF_NONE_MATCH, header_value(etag, "If-None-Match")?);
        match self.send("get wallet", request).await {
            Err(Error::UnexpectedResponse { status, .. }) if status == StatusCode::NOT_MODIFIED => {
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    /// `POST /v1/wallets/{id}/deposits` (needs the `wallets:deposit` scope).
    pub async fn deposit(
        &self,
        wallet: WalletId,
        amount: &Amount,
        key: Option<&IdempotencyKey>,
    ) -> Result<Reply<Movement>, Error> {
        self.post(
            "deposit",
            &format!("v1/wallets/{wallet}/deposits"),
            Some(amount),
            key,
        )
        .await
    }

    /// `POST /v1/wallets/{id}/withdrawals` (by the wallet's owner).
    pub async fn withdraw(
        &self,
        wallet: WalletId,
        amount: &Amount,
        key: Option<&IdempotencyKey>,
    ) -> Result<Reply<Movement>, Error> {
        self.post(
            "withdraw",
            &format!("v1/wallets/{wallet}/withdrawals"),
            Some(amount),
            key,
        )
        .await
    }

    /// `POST /v1/transfers` (by the owner of the source wallet).
    pub async fn transfer(
        &self,
        transfer: &CreateTransfer,
        key: Option<&IdempotencyKey>,
    ) -> Result<Reply<Transfer>, Error> {
        self.post("transfer", "v1/transfers", Some(transfer), key)
            .await
    }

    /// `POST /v1/wallets/{id}/freeze` (needs the `wallets:admin` scope).
    pub async fn freeze(
        &self,
        wallet: WalletId,
        key: Option<&IdempotencyKey>,
    ) -> Result<Reply<Wallet>, Error> {
        let path = format!("v1/wallets/{wallet}/freeze");
        self.post::<(), _>("freeze wallet", &path, None, key).await
    }

    /// `POST /v1/wallets/{id}/unfreeze` (needs the `wallets:admin` scope).
    pub async fn unfreeze(
        &self,
        wallet: WalletId,
        key: Option<&IdempotencyKey>,
    ) -> Result<Reply<Wallet>, Error> {
        let path = format!("v1/wallets/{wallet}/unfreeze");
        self.post::<(), _>("unfreeze wallet", &path, None, key)
            .await
    }

    /// `POST /v1/wallets/{id}/close` (by the wallet's owner; the balance must be zero).
    pub async fn close(
        &self,
        wallet: WalletId,
        key: Option<&IdempotencyKey>,
    ) -> Result<Reply<Wallet>, Error> {
        let path = format!("v1/wallets/{wallet}/close");
        self.post::<(), _>("close wallet", &path, None, key).await
    }

    /// `GET /v1/wallets/{id}/transactions`: one page of the wallet's ledger history, newest
    /// first.
    pub async fn history(
        &self,
        wallet: WalletId,
        page: &PageRequest,
    ) -> Result<Reply<Page<HistoryItem>>, Error> {
        let path = format!("v1/wallets/{wallet}/transactions");
        let request = self.request("wallet history", Method::GET, &path, &page.query())?;
        self.send("wallet history", request).await
    }

    /// The whole history of a wallet, newest first, read in pages of `page_size`.
    pub async fn history_all(
        &self,
        wallet: WalletId,
        page_size: u32,
    ) -> Result<Vec<HistoryItem>, Error> {
        every_page(page_size, |request| async move {
            self.history(wallet, &request).await
        })
        .await
    }

    /// `GET /v1/wallets/{id}/activity`: the activity read model (eventually consistent).
    pub async fn activity(&self, wallet: WalletId) -> Result<Reply<Activity>, Error> {
        let path = format!("v1/wallets/{wallet}/activity");
        let request = self.request("wallet activity", Method::GET, &path, &[])?;
        self.send("wallet activity", request).await
    }

    /// `GET /v1/analytics/volume` (scope `wallets:admin`): one page of a currency's volume
    /// per minute, oldest minute first.
    pub async fn volume(
        &self,
        range: &VolumeRange,
        page: &PageRequest,
    ) -> Result<Reply<Page<VolumeMinute>>, Error> {
        let mut query = range.query();
        query.extend(page.query());
        let request = self.request(
            "analytics volume",
            Method::GET,
            "v1/analytics/volume",
            &query,
        )?;
        self.send("analytics volume", request).await
    }

    /// Every minute of [`Client::volume`] in `range`, oldest first, read in pages of
    /// `page_size`.
    pub async fn volume_all(
        &self,
        range: &VolumeRange,
        page_size: u32,
    ) -> Result<Vec<VolumeMinute>, Error> {
        every_page(page_size, |request| async move {
            self.volume(range, &request).await
        })
        .await
    }

    /// `GET /v1/risk/alerts` (scope `wallets:admin`): one page of velocity alerts, newest
    /// first.
    pub async fn risk_alerts(&self, page: &PageRequest) -> Result<Reply<Page<RiskAlert>>, Error> {
        let request = self.request("risk alerts", Method::GET, "v1/risk/alerts", &page.query())?;
        self.send("risk alerts", request).await
    }

    pub(crate) async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        body: Option<&B>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Reply<T>, Error> {
        let request = idempotent(self.request(operation, Method::POST, path, &[])?, key);
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        self.send(operation, request).await
    }

    /// A request to `path` (relative to the base URL) with the bearer token, if any.
    pub(crate) fn request(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<RequestBuilder, Error> {
        let mut url = self
            .base
            .join(path)
            .map_err(|source| Error::Url { operation, source })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let is_read = method == Method::GET;
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            let mut value =
                header_value(&format!("Bearer {}", token.expose_secret()), "bearer token")?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(id) = &self.correlation_id {
            request = request.header(CORRELATION_ID, header_value(id, "correlation id")?);
        }
        if let Some(traceparent) = &self.traceparent {
            request = request.header(TRACEPARENT, header_value(traceparent, "traceparent")?);
        }
        if let Some(etag) = self.if_match.as_ref().filter(|_| !is_read) {
            request = request.header(IF_MATCH, header_value(etag, "If-Match")?);
        }
        Ok(request)
    }

    /// Sends `request`: a 2xx answer's body is read as `T`; any other is the problem.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        request: RequestBuilder,
    ) -> Result<Reply<T>, Error> {
        let transport = |source| Error::Transport { operation, source };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            let body = serde_json::from_slice(&body).map_err(|e| Error::UnexpectedResponse {
                operation,
                status,
                source: Some(e),
            })?;
            return Ok(Reply::new(status, &headers, body));
        }
        match serde_json::from_slice::<Problem>(&body) {
            Ok(problem) => Err(Error::Problem(Box::new(ProblemResponse {
                problem,
                replayed: reply::is_replayed(&headers),
                retry_after_seconds: reply::header(&headers, RETRY_AFTER.as_str())
                    .and_then(|value| value.parse().ok()),
            }))),
            Err(e) => Err(Error::UnexpectedResponse {
                operation,
                status,
                source: Some(e),
            }),
        }
    }
}

/// Every item of a paged list, reading pages of `page_size` with `read` until the last.
async fn every_page<T, F, Fut>(page_size: u32, mut read: F) -> Result<Vec<T>, Error>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Reply<Page<T>>, Error>>,
{
    let mut items = Vec::new();
    let mut next = Some(PageRequest::first(page_size));
    while let Some(request) = next {
        let page = read(request.clone()).await?.body;
        next = request.next(&page);
        items.extend(page.items);
    }
    Ok(items)
}

fn header_value(value: &str, name: &'static str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(value).map_err(|_| Error::InvalidHeader { name })
}

fn idempotent(request: RequestBuilder, key: Option<&IdempotencyKey>) -> RequestBuilder {
    match key {
        Some(key) => request.header(IDEMPOTENCY_KEY, key.as_str()),
        None => request,
    }
}

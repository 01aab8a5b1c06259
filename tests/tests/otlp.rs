//! One trace per request, exported over OTLP: an in-test OTLP/HTTP receiver collects the
//! spans of a wallet creation from the HTTP request through the outbox and Kafka to the
//! consumer. Its own test binary, because the tracer provider is per process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;

use wallet_hub_tests::{eventually, spawn_app_with};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const REMOTE_PARENT: &str = "b7ad6b7169203331";

/// A received span, flattened.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
    resource: HashMap<String, String>,
}

type Store = Arc<Mutex<Vec<Received>>>;

fn attributes(
    list: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> HashMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(Value::BoolValue(b)) => b.to_string(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

async fn collect(State(store): State<Store>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    let mut spans = store.lock().expect("not poisoned");
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                spans.push(Received {
                    name: span.name.clone(),
                    kind: span.kind,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: attributes(&span.attributes),
                    resource: resource.clone(),
                });
            }
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn one_trace_runs_from_the_http_request_through_kafka_to_the_consumer() {
    let store: Store = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver = format!("http://{}", listener.local_addr().expect("addr"));
    let router = axum::Router::new()
        .route("/v1/traces", post(collect))
        .with_state(Arc::clone(&store));
    tokio::spawn(async move { axum::serve(listener, router).await });

    let app = spawn_app_with(|settings| {
        settings.telemetry.otlp_endpoint = receiver.clone();
        settings.telemetry.otlp_protocol = telemetry::OtlpProtocol::Http;
        settings.telemetry.environment = "test".into();
    })
    .await;
    let user = app.create_user().await;
    let response = app
        .request(
            reqwest::Method::POST,
            "/v1/wallets",
            Some(&serde_json::json!({"user_id": user, "name": "Traced", "currency": "USD"})),
        )
        .await
        .header("traceparent", format!("00-{TRACE_ID}-{REMOTE_PARENT}-01"))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 201);
    eventually("the welcome notification", || async {
        let list: Vec<serde_json::Value> =
            app.list(&format!("/v1/users/{user}/notifications")).await;
        (!list.is_empty()).then_some(())
    })
    .await;

    let spans = eventually("the consumer span to be exported", || {
        let store = Arc::clone(&store);
        async move {
            telemetry::flush();
            let spans = store.lock().expect("not poisoned").clone();
            spans
                .iter()
                .any(|s| s.trace_id == TRACE_ID && s.kind == SpanKind::Consumer as i32)
                .then_some(spans)
        }
    })
    .await;
    let trace: Vec<&Received> = spans.iter().filter(|s| s.trace_id == TRACE_ID).collect();
    let by_id: HashMap<&str, &Received> = trace.iter().map(|s| (s.span_id.as_str(), *s)).collect();
    let find = |kind: SpanKind, name_prefix: &str| {
        trace
            .iter()
            .find(|s| s.kind == kind as i32 && s.name.starts_with(name_prefix))
            .copied()
            .unwrap_or_else(|| panic!("no {kind:?} span {name_prefix}* in {trace:#?}"))
    };
    let ancestors = |span: &Received| {
        let mut chain = Vec::new();
        let mut parent = span.parent_span_id.clone();
        while let Some(p) = by_id.get(parent.as_str()) {
            chain.push(p.name.clone());
            parent = p.parent_span_id.clone();
        }
        (chain, parent)
    };

    let server = find(SpanKind::Server, "POST /v1/wallets");
    assert_eq!(
        server.parent_span_id, REMOTE_PARENT,
        "continues the caller's span"
    );
    assert_eq!(server.attributes["http.request.method"], "POST");
    assert_eq!(server.attributes["http.route"], "/v1/wallets");
    assert_eq!(server.attributes["http.response.status_code"], "201");
    assert_eq!(server.resource["service.name"], "wallet-hub-tests");
    assert!(server.resource.contains_key("service.version"));
    assert_eq!(server.resource["deployment.environment.name"], "test");

    let transaction = find(SpanKind::Client, "transaction create wallet");
    assert_eq!(transaction.attributes["db.system.name"], "postgresql");
    assert!(
        ancestors(transaction).0.contains(&server.name),
        "db span under the server span"
    );
    let insert = find(SpanKind::Client, "outbox.insert");
    assert_eq!(insert.parent_span_id, transaction.span_id);

    let publish = find(SpanKind::Producer, "send ");
    assert_eq!(
        publish.parent_span_id, transaction.span_id,
        "publish continues the stored context"
    );
    assert_eq!(publish.attributes["messaging.system"], "kafka");
    assert_eq!(
        publish.attributes["messaging.destination.name"],
        app.topics.wallet_created
    );
    let event_id = publish.attributes["messaging.message.id"].clone();
    assert!(!event_id.is_empty());

    let consume = find(SpanKind::Consumer, "process ");
    assert_eq!(
        consume.parent_span_id, publish.span_id,
        "consumer continues the publish span"
    );
    assert_eq!(consume.attributes["messaging.system"], "kafka");
    assert_eq!(
        consume.attributes["messaging.destination.name"],
        app.topics.wallet_created
    );
    assert_eq!(consume.attributes["messaging.message.id"], event_id);
    assert!(
        consume
            .attributes
            .contains_key("messaging.destination.partition.id")
    );
    assert!(consume.attributes.contains_key("messaging.kafka.offset"));
    let (chain, root_parent) = ancestors(consume);
    assert_eq!(
        root_parent, REMOTE_PARENT,
        "one trace from the caller down: {chain:?}"
    );
}

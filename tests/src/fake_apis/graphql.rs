//! A GraphQL API served by a real GraphQL engine (`async-graphql`), so variable coercion and the
//! error shape are the GraphQL specification's (spec.graphql.org, "CoerceVariableValues()",
//! "Int" input coercion, "Request Errors") and not a guess: a variable declared `Int!` given the
//! string `"42"` is a request error, the operation does not run, and the answer is 200 (GraphQL
//! over HTTP with `application/json`) with `{"data": null, "errors": [{"message": ...,
//! "locations": [...]}]}`. A client that sends an id back as a string deletes nothing.
//!
//! `POST /graphql` with `Authorization: Bearer <token>` (401 without it, as GitHub's and
//! Shopify's GraphQL endpoints answer) and a JSON body `{"query", "variables", "operationName"}`:
//!
//! ```graphql
//! type Todo { id: Int!, title: String!, done: Boolean! }
//! type Query { todo(id: Int!): Todo }
//! type Mutation { createTodo(title: String!): Todo!, deleteTodo(id: Int!): Boolean! }
//! ```

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use async_graphql::{Context, EmptySubscription, Object, Schema, SimpleObject};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use super::{RunningFake, bearer_token, lock, serve};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphqlConfig {
    pub token: String,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self { token: "gql_pat_synthetic_9f2Kx71".to_owned() }
    }
}

/// What the API saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphqlState {
    pub created: u64,
    pub deleted: u64,
    /// Todos created and not deleted: test data left live.
    pub live: u64,
    /// Operations answered with `errors` (a request error such as a mistyped variable, or a
    /// field error), each error's message in order.
    pub errors: Vec<String>,
    pub unauthorized: u64,
}

#[derive(Debug, Clone, SimpleObject)]
struct Todo {
    id: i32,
    title: String,
    done: bool,
}

#[derive(Debug, Default)]
struct Store {
    next_id: i32,
    todos: BTreeMap<i32, Todo>,
    state: GraphqlState,
}

type Shared = Arc<Mutex<Store>>;

struct QueryRoot;

#[Object]
impl QueryRoot {
    async fn todo(&self, ctx: &Context<'_>, id: i32) -> Option<Todo> {
        let store = ctx.data_unchecked::<Shared>();
        lock(store).todos.get(&id).cloned()
    }
}

struct MutationRoot;

#[Object]
impl MutationRoot {
    async fn create_todo(&self, ctx: &Context<'_>, title: String) -> Todo {
        let mut store = lock(ctx.data_unchecked::<Shared>());
        // Ids well past one digit, so a client that mangles them shows.
        store.next_id += 1;
        let todo = Todo { id: 4000 + store.next_id, title, done: false };
        store.todos.insert(todo.id, todo.clone());
        store.state.created += 1;
        todo
    }

    async fn delete_todo(&self, ctx: &Context<'_>, id: i32) -> bool {
        let mut store = lock(ctx.data_unchecked::<Shared>());
        let deleted = store.todos.remove(&id).is_some();
        if deleted {
            store.state.deleted += 1;
        }
        deleted
    }
}

type TodoSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

#[derive(Clone)]
struct Api {
    cfg: GraphqlConfig,
    schema: TodoSchema,
    store: Shared,
}

#[derive(Clone)]
pub struct GraphqlHandle(Shared);

impl std::fmt::Debug for GraphqlHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("GraphqlHandle").field(&self.state()).finish()
    }
}

impl GraphqlHandle {
    pub fn state(&self) -> GraphqlState {
        let store = lock(&self.0);
        GraphqlState { live: store.todos.len() as u64, ..store.state.clone() }
    }
}

pub fn router(cfg: GraphqlConfig) -> (Router, GraphqlHandle) {
    let store = Shared::default();
    let schema = Schema::build(QueryRoot, MutationRoot, EmptySubscription).data(store.clone()).finish();
    let api = Api { cfg, schema, store: store.clone() };
    let router = Router::new().route("/graphql", post(graphql)).with_state(api);
    (router, GraphqlHandle(store))
}

pub async fn spawn(cfg: GraphqlConfig) -> io::Result<RunningFake<GraphqlHandle>> {
    let (router, handle) = router(cfg);
    serve(router, handle).await
}

async fn graphql(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    if bearer_token(&headers).as_deref() != Some(api.cfg.token.as_str()) {
        lock(&api.store).state.unauthorized += 1;
        let body = json!({ "message": "Bad credentials" });
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], axum::Json(body)).into_response();
    }
    // A body that is no GraphQL request is the one 400 of GraphQL over HTTP.
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            let body = json!({ "errors": [{ "message": format!("Invalid GraphQL request: {e}") }] });
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    let response = api.schema.execute(request).await;
    lock(&api.store).state.errors.extend(response.errors.iter().map(|e| e.message.clone()));
    (StatusCode::OK, axum::Json(response)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_apis::{send, test_client};

    #[tokio::test]
    async fn a_string_for_an_int_variable_is_a_request_error_and_deletes_nothing() {
        let cfg = GraphqlConfig::default();
        let fake = spawn(cfg.clone()).await.unwrap();
        let (http, url) = (test_client(), format!("{}/graphql", fake.base_url()));
        let call = |body: serde_json::Value| {
            http.post(&url).bearer_auth(&cfg.token).header("content-type", "application/json").body(body.to_string())
        };

        let create = json!({ "query": "mutation($t: String!) { createTodo(title: $t) { id done } }",
                             "variables": { "t": "milk" } });
        let (status, created) = send(call(create)).await;
        let id = created["data"]["createTodo"]["id"].as_i64().unwrap();
        assert_eq!((status, created["data"]["createTodo"]["done"].as_bool()), (200, Some(false)));

        let delete = "mutation($id: Int!) { deleteTodo(id: $id) }";
        let (status, typed_as_string) =
            send(call(json!({ "query": delete, "variables": { "id": id.to_string() } }))).await;
        assert_eq!(status, 200, "GraphQL over HTTP with application/json");
        assert!(typed_as_string["data"].is_null(), "the operation did not run: {typed_as_string}");
        let message = typed_as_string["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("id") && message.contains("Int"), "{message}");
        assert_eq!(fake.handle().state().live, 1);

        let (_, deleted) = send(call(json!({ "query": delete, "variables": { "id": id } }))).await;
        assert_eq!(deleted, json!({ "data": { "deleteTodo": true } }));
        let state = fake.handle().state();
        assert_eq!((state.created, state.deleted, state.live, state.errors.len()), (1, 1, 0, 1), "{state:?}");

        assert_eq!(send(http.post(&url).body(r#"{"query": "{ todo(id: 1) { id } }"}"#)).await.0, 401);
    }
}

//! The OpenAPI 3.1 description of the API, built from [`crate::routes::ALL`] and the types'
//! derived schemas. dsmild serves it at `GET /api/openapi.json`; `cargo xtask openapi` writes
//! it to `docs/openapi.json` (and CI checks that file is current).

use std::collections::BTreeMap;

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr, Required,
};

use crate::routes::{ALL, Auth, Body, Method, SchemaRef};

/// Schemas of the WebSocket messages, which no HTTP body names but every client needs.
fn websocket_schemas() -> [SchemaRef; 2] {
    [
        SchemaRef::of::<crate::ws::ServerMessage>(),
        SchemaRef::of::<crate::ws::ClientMessage>(),
    ]
}

/// Collects a schema and everything it refers to as components.
fn collect(schema: &SchemaRef, into: &mut BTreeMap<String, RefOr<Schema>>) {
    into.insert((schema.name)().into_owned(), (schema.schema)());
    let mut refs = Vec::new();
    (schema.refs)(&mut refs);
    for (name, s) in refs {
        into.insert(name, s);
    }
}

fn reference(schema: &SchemaRef) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name((schema.name)()))
}

fn content(
    body: &Body,
    components: &mut BTreeMap<String, RefOr<Schema>>,
) -> Vec<(String, ContentBuilder)> {
    let spec = SchemaRef::of::<crate::workflows::WorkflowSpec>();
    let record = SchemaRef::of::<crate::learn::AgentPerformance>();
    match body {
        Body::Empty | Body::WebSocket => Vec::new(),
        Body::Json(s) => {
            collect(s, components);
            vec![(
                "application/json".into(),
                ContentBuilder::new().schema(Some(reference(s))),
            )]
        }
        Body::JsonArray(s) => {
            collect(s, components);
            vec![(
                "application/json".into(),
                ContentBuilder::new().schema(Some(ArrayBuilder::new().items(reference(s)).build())),
            )]
        }
        Body::WorkflowSpec => {
            collect(&spec, components);
            ["application/json", "application/toml"]
                .into_iter()
                .map(|t| {
                    (
                        t.to_owned(),
                        ContentBuilder::new().schema(Some(reference(&spec))),
                    )
                })
                .collect()
        }
        Body::Records => {
            collect(&record, components);
            vec![
                (
                    "application/json".into(),
                    ContentBuilder::new()
                        .schema(Some(ArrayBuilder::new().items(reference(&record)).build())),
                ),
                (
                    "application/x-ndjson".into(),
                    ContentBuilder::new().schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .description(Some(
                                "NDJSON: one AgentPerformance record (as in the JSON array form) \
                                 per line; blank lines are skipped.",
                            ))
                            .build(),
                    )),
                ),
            ]
        }
        Body::Text { content_type } => vec![(
            (*content_type).to_owned(),
            ContentBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String).build())),
        )],
    }
}

/// The whole description.
pub fn document() -> OpenApi {
    let mut components: BTreeMap<String, RefOr<Schema>> = BTreeMap::new();
    for s in websocket_schemas() {
        collect(&s, &mut components);
    }
    let mut paths = Paths::new();
    for route in ALL {
        let mut op = OperationBuilder::new()
            .operation_id(Some(route.operation_id))
            .summary(Some(route.summary))
            .tag(route.tag);
        for (name, description) in route.path_params {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .description(Some(*description))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String).build())),
            );
        }
        if let Some(query) = route.query {
            op = op.parameters(Some(query()));
        }
        let request = content(&route.request, &mut components);
        if !request.is_empty() {
            let mut body = RequestBodyBuilder::new().required(Some(Required::True));
            for (content_type, c) in request {
                body = body.content(content_type, c.build());
            }
            op = op.request_body(Some(body.build()));
        }
        let behind_token: &[crate::routes::Answer] = match route.auth {
            Auth::None => &[],
            Auth::Bearer | Auth::BearerOrQuery => &[crate::routes::TOO_MANY_FAILURES],
        };
        for answer in route.answers.iter().chain(behind_token) {
            let mut response = ResponseBuilder::new().description(answer.description);
            for (content_type, c) in content(&answer.body, &mut components) {
                response = response.content(content_type, c.build());
            }
            op = op.response(answer.status.to_string(), response.build());
        }
        match route.auth {
            Auth::None => op = op.securities(Some(Vec::<SecurityRequirement>::new())),
            Auth::Bearer => {
                op = op.security(SecurityRequirement::new("bearer", Vec::<String>::new()))
            }
            Auth::BearerOrQuery => {
                op = op
                    .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
                    .security(SecurityRequirement::new(
                        "token_query",
                        Vec::<String>::new(),
                    ));
            }
        }
        let method = match route.method {
            Method::Get => HttpMethod::Get,
            Method::Post => HttpMethod::Post,
        };
        paths.add_path_operation(route.path, vec![method], op.build());
    }
    let components = ComponentsBuilder::new()
        .schemas_from_iter(components)
        .security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .security_scheme(
            "token_query",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("token"))),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("dsmild")
                .version(dsmil_core::VERSION)
                .description(Some(
                    "The DSMIL daemon's HTTP API. Errors are {\"error\":{\"code\",\"message\"}} \
                     with a 4xx or 5xx status. Every route but /api/health and / needs \
                     Authorization: Bearer <token> (DATA_DIR/api-token).",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

/// The description as pretty JSON with a final newline (the form `docs/openapi.json` holds).
pub fn to_pretty_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_every_referenced_schema_is_described() {
        let doc: serde_json::Value = serde_json::from_str(&to_pretty_json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for route in ALL {
            let op = &doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
            assert_eq!(op["operationId"], route.operation_id, "{}", route.path);
        }
        // Every $ref resolves.
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{name} is referenced but not described"
            );
        }
        assert!(doc["components"]["schemas"].get("ServerMessage").is_some());
    }
}

//! The OpenAPI 3.1 document: what the derive gives from the handlers' annotations, completed
//! with what it cannot say, and the route that serves it.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

use super::{cells, health, inventory, ops, plans};

/// The bearer scheme, and the 401 and 403 every route that needs a token can answer.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        use utoipa::openapi::{Ref, ResponseBuilder};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                // `security(())`: open to all (the probes).
                let open = op
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
                if open {
                    continue;
                }
                op.responses.responses.insert(
                    "401".into(),
                    error("unauthorized: no bearer token, or not one of this service's (with --tokens)").into(),
                );
                op.responses.responses.insert(
                    "403".into(),
                    error("forbidden: the token's role is below the route's").into(),
                );
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cellplacer",
        description = "Topology-aware placement of consensus cells"
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    paths(
        cells::place_cell,
        cells::list_cells,
        cells::get_cell,
        cells::delete_cell,
        cells::replace_node,
        cells::put_clients,
        cells::commit_move,
        inventory::get_server,
        health::put_state,
        health::post_states,
        health::list_elements,
        health::get_autopilot,
        health::put_autopilot,
        inventory::report,
        inventory::get_inventory,
        inventory::switch_inventory,
        inventory::validate_inventory,
        plans::create_plan,
        plans::list_plans,
        plans::get_plan,
        plans::execute_plan,
        plans::pause_plan,
        plans::resume_plan,
        plans::cancel_plan,
        inventory::whatif,
        cells::import_cells,
        ops::healthz,
        ops::readyz,
        ops::metrics
    )
)]
struct ApiDoc;

/// The OpenAPI 3.1 document of this API, as served: what the derive gives, completed with
/// what it cannot say (see [`complete`]).
pub(crate) fn openapi() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    complete(&mut doc);
    doc
}

/// Completes the derived document so that it says exactly what the service takes and
/// answers: the errors every route with a body or parameters can give, the constraints
/// the request types check by hand, and unsigned integers as such.
fn complete(doc: &mut serde_json::Value) {
    use serde_json::{json, Value};
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        })
    };
    if let Some(paths) = doc["paths"].as_object_mut() {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for op in item.values_mut() {
                let open = op["security"].as_array().is_some_and(|s| {
                    s.iter()
                        .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
                });
                let has_body = op.get("requestBody").is_some();
                let has_params = op["parameters"].as_array().is_some_and(|p| !p.is_empty());
                let Some(responses) = op["responses"].as_object_mut() else {
                    continue;
                };
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status)
                        .or_insert_with(|| error(description));
                };
                if has_body {
                    add("400", "malformed_json: the body is not JSON");
                    add("408", "body_timeout: the body stalled or came too slowly");
                    add("413", "body_too_large");
                    add(
                        "415",
                        "unsupported_media_type: the body is not application/json",
                    );
                }
                if has_body || has_params {
                    add(
                        "422",
                        "invalid_field: a field or parameter is not as declared",
                    );
                }
                if !open {
                    add("503", "overloaded, contended, timeout, store_unavailable or shutting_down (transient: retry)");
                }
            }
        }
    }
    // Unsigned integers: `int64` would bound them to the signed range the service exceeds.
    fn unsigned(v: &mut Value) {
        match v {
            Value::Object(o) => {
                let is_unsigned = o.get("format").and_then(Value::as_str) == Some("int64")
                    && o.get("minimum").and_then(Value::as_i64) == Some(0);
                if is_unsigned {
                    o.insert("format".into(), json!("uint64"));
                }
                o.values_mut().for_each(unsigned);
            }
            Value::Array(a) => a.iter_mut().for_each(unsigned),
            _ => {}
        }
    }
    unsigned(doc);
    let schemas = &mut doc["components"]["schemas"];
    // Exactly one of a server-side path and uploaded tables (the only two properties).
    schemas["InventoryRequest"]["minProperties"] = json!(1);
    schemas["InventoryRequest"]["maxProperties"] = json!(1);
    schemas["InventoryRequest"]["properties"]["path"]["minLength"] = json!(1);
    schemas["ImportRequest"]["properties"]["path"]["minLength"] = json!(1);
    // At least one goal.
    schemas["PlanRequest"]["anyOf"] = json!([
        {"required": ["drain"], "properties": {"drain": {"type": "array"}}},
        {"required": ["repair"], "properties": {"repair": {"const": true}}},
        {"required": ["balance"], "properties": {"balance": {"type": "number"}}},
        {"required": ["improve"], "properties": {"improve": {"const": true}}}
    ]);
    schemas["PlaceRequest"]["properties"]["size"]["minimum"] = json!(1);
    schemas["PlaceRequest"]["properties"]["size"]["maximum"] =
        json!(topology::workload::MAX_CELL_SIZE);
}

/// `GET /openapi.json`: the document (open to all, like the probes).
pub(super) async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        openapi().to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::limits::LIST_LIMIT;
    use runtime::service::MAX_STEPS_PAGE;
    use serde_json::{json, Value};

    /// The query parameter `name` of `GET path` in the served document.
    fn param(doc: &Value, path: &str, name: &str) -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("GET {path} has no parameter {name}"))
    }

    /// utoipa's `maximum` takes only a literal: the document must still say the
    /// runtime's limits.
    #[test]
    fn documented_maxima_are_the_runtime_s_limits() {
        let doc = openapi();
        for (path, name, limit) in [
            ("/v1/cells", "limit", LIST_LIMIT),
            ("/v1/report", "top", LIST_LIMIT),
            ("/v1/plans/{id}", "limit", MAX_STEPS_PAGE),
        ] {
            let p = param(&doc, path, name);
            assert_eq!(p["schema"]["maximum"], json!(limit), "{path} {name}: {p}");
            let description = p["description"].as_str().unwrap_or_default();
            assert!(
                description.contains(&limit.to_string()),
                "{path} {name}: {description}"
            );
        }
    }
}

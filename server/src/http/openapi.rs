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
        cells::explain_cell,
        cells::cell_moves,
        cells::delete_cell,
        cells::replace_node,
        cells::put_clients,
        cells::commit_move,
        inventory::get_server,
        inventory::list_racks,
        inventory::get_rack,
        inventory::get_element,
        inventory::get_blast,
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
        ops::whoami,
        ops::fleet,
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
                let format = o.get("format").and_then(Value::as_str).map(str::to_owned);
                let from_zero = o.get("minimum").and_then(Value::as_i64) == Some(0);
                if from_zero && format.as_deref() == Some("int64") {
                    o.insert("format".into(), json!("uint64"));
                }
                if from_zero && format.as_deref() == Some("int32") {
                    o.insert("format".into(), json!("uint32"));
                    o.entry("maximum").or_insert(json!(u32::MAX));
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
    strict_requests(schemas);
    strict_parameters(&mut doc["paths"]);
}

/// A cell id as a pattern: [`topology::workload::CELL_ID_RULE`].
const CELL_ID_PATTERN: &str = "^[A-Za-z0-9._:-]{1,128}$";

/// A `next_cursor`: the hex of a cell id's bytes, each one [`CELL_ID_PATTERN`] allows.
const CURSOR_PATTERN: &str =
    "^(?:2[deDE]|3[0-9aA]|4[1-9a-fA-F]|5[0-9afAF]|6[1-9a-fA-F]|7[0-9aA]){1,128}$";

/// The bounds the request bodies' checks keep, from the constants the code checks with,
/// so that a body the document allows is one the service takes (or answers by the data:
/// an id it lacks is 404, a conflict 409).
fn strict_requests(schemas: &mut serde_json::Value) {
    use runtime::limits::{
        MAX_CLIENTS, MAX_CONCURRENCY, MAX_GRACE_S, MAX_IN_FLIGHT, MAX_MOVES_PER_HOUR, MAX_RATE,
        MIN_RATE,
    };
    use serde_json::json;
    let id = json!({"type": "string", "minLength": 1});
    let clients = json!({
        "type": "array", "items": id, "minItems": 1, "maxItems": MAX_CLIENTS, "uniqueItems": true
    });
    schemas["PlaceRequest"]["properties"]["cell_id"]["pattern"] = json!(CELL_ID_PATTERN);
    for request in ["PlaceRequest", "ClientsRequest"] {
        for (k, v) in clients.as_object().into_iter().flatten() {
            schemas[request]["properties"]["clients"][k] = v.clone();
        }
    }
    schemas["ReplaceRequest"]["properties"]["server"]["minLength"] = json!(1);
    // One of the two, never null.
    let inventory = &mut schemas["InventoryRequest"]["properties"];
    inventory["path"]["type"] = json!("string");
    inventory["tables"]["type"] = json!("object");
    let reason = json!({"type": ["string", "null"], "maxLength": runtime::overlay::MAX_REASON});
    schemas["ElementStateRequest"]["properties"]["reason"] = reason.clone();
    schemas["ElementStateItem"]["properties"]["reason"] = reason;
    schemas["ElementStateItem"]["properties"]["element"]["minLength"] = json!(1);
    let states = &mut schemas["ElementStatesRequest"]["properties"]["states"];
    states["minItems"] = json!(1);
    states["maxItems"] = json!(runtime::service::MAX_STATES);
    let rate = json!({"type": ["number", "null"], "minimum": MIN_RATE, "maximum": MAX_RATE});
    let execute = &mut schemas["ExecuteRequest"]["properties"];
    execute["rate"] = rate.clone();
    execute["concurrency"]["minimum"] = json!(1);
    execute["concurrency"]["maximum"] = json!(MAX_CONCURRENCY);
    let plan = &mut schemas["PlanRequest"]["properties"];
    plan["balance"]["minimum"] = json!(1);
    plan["max_moves"]["maximum"] = json!(runtime::limits::MAX_MOVES);
    plan["drain"]["items"]["minLength"] = json!(1);
    let pilot = &mut schemas["AutopilotUpdate"]["properties"];
    pilot["rate"] = rate;
    pilot["grace_s"]["minimum"] = json!(0);
    pilot["grace_s"]["maximum"] = json!(MAX_GRACE_S);
    pilot["max_in_flight"]["minimum"] = json!(1);
    pilot["max_in_flight"]["maximum"] = json!(MAX_IN_FLIGHT);
    pilot["max_moves_per_hour"]["maximum"] = json!(MAX_MOVES_PER_HOUR);
    let whatif = &mut schemas["WhatIfRequest"]["properties"];
    whatif["pairs_top"]["maximum"] = json!(runtime::limits::LIST_LIMIT);
    whatif["headroom_limit"]["minimum"] = json!(1);
    whatif["headroom_limit"]["maximum"] = json!(runtime::limits::MAX_HEADROOM);
}

/// The bounds of path and query parameters the handlers check by hand.
fn strict_parameters(paths: &mut serde_json::Value) {
    use serde_json::json;
    let Some(paths) = paths.as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            let parameters = op.get_mut("parameters").and_then(|p| p.as_array_mut());
            for p in parameters.into_iter().flatten() {
                let (name, place) = (p["name"].clone(), p["in"].clone());
                let schema = &mut p["schema"];
                match (name.as_str(), place.as_str()) {
                    (Some("id"), Some("path")) if path.starts_with("/v1/cells/") => {
                        schema["pattern"] = json!(CELL_ID_PATTERN);
                    }
                    (Some("id"), Some("path")) => schema["minLength"] = json!(1),
                    (Some("n"), Some("path")) => schema["minimum"] = json!(1),
                    (Some("cursor"), Some("query")) => schema["pattern"] = json!(CURSOR_PATTERN),
                    (Some("state"), Some("query")) => {
                        schema["enum"] = json!(["failed", "draining", "active"]);
                    }
                    _ => {}
                }
            }
        }
    }
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
            ("/v1/cells/{id}/moves", "limit", LIST_LIMIT),
            ("/v1/elements/{id}", "limit", LIST_LIMIT),
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

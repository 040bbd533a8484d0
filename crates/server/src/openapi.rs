//! The admin API's OpenAPI 3.0 document, served at `/api/v1/openapi.json`.

use serde_json::{Value, json};

fn error_responses() -> Value {
    json!({
        "400": {"$ref": "#/components/responses/Error"},
        "401": {"$ref": "#/components/responses/Error"},
        "404": {"$ref": "#/components/responses/Error"},
        "405": {"$ref": "#/components/responses/Error"},
        "413": {"$ref": "#/components/responses/Error"},
        "503": {"$ref": "#/components/responses/Error"}
    })
}

fn ok(schema: Value) -> Value {
    let mut r = error_responses();
    r["200"] = json!({"description": "OK", "content": {"application/json": {"schema": schema}}});
    r
}

/// 202 with `schema`, or an error (429: too many captures running).
fn accepted(schema: Value) -> Value {
    let mut r = error_responses();
    r["202"] =
        json!({"description": "Started", "content": {"application/json": {"schema": schema}}});
    r["429"] = json!({"$ref": "#/components/responses/Error"});
    r
}

/// 200 with a capture file.
fn ndjson() -> Value {
    let mut r = error_responses();
    r["200"] = json!({"description": "The capture (docs/protocol.md, Captures)",
        "content": {"application/x-ndjson": {"schema": {"type": "string"}}}});
    r
}

/// A room name: 1–256 characters, no control characters.
fn room_schema() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 256,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"})
}

fn path_param(name: &str, what: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": what,
        "schema": {"type": "string", "minLength": 1}})
}

fn query_int(name: &str, what: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": what,
        "schema": {"type": "integer", "minimum": 0, "maximum": 9_007_199_254_740_991_u64}})
}

/// The document.
pub(crate) fn document() -> Value {
    let message = json!({"type": "object", "required": ["offset", "event", "data", "from", "at"],
        "properties": {"offset": {"type": "integer"}, "event": {"type": "string"}, "data": {},
            "from": {"type": "string", "nullable": true}, "at": {"type": "string", "format": "date-time"}}});
    let present = json!({"type": "object", "required": ["user", "connections", "since"],
        "properties": {"user": {"type": "string"}, "info": {}, "connections": {"type": "integer"},
            "since": {"type": "string", "format": "date-time"}}});
    let capture = json!({"type": "object",
        "required": ["id", "target", "protocol", "state", "started_at", "ends_at", "bytes"],
        "properties": {"id": {"type": "string"},
            "target": {"type": "object", "properties": {"room": {"type": "string"}, "socket": {"type": "string"}}},
            "protocol": {"type": "string", "enum": ["native", "socketio"]},
            "state": {"type": "string", "enum": ["running", "done"]},
            "started_at": {"type": "string", "format": "date-time"},
            "ends_at": {"type": "string", "format": "date-time"},
            "bytes": {"type": "integer"}, "frames": {"type": "integer"},
            "dropped": {"type": "integer"}, "truncated": {"type": "boolean"},
            "url": {"type": "string"}}});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "switchboard admin API", "version": env!("CARGO_PKG_VERSION"),
            "description": "Publish, disconnect and inspect a switchboard server. Every request \\
                but this document carries `Authorization: Bearer <key>`. See docs/protocol.md."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/publish": {"post": {
                "summary": "Publish an event to a room (members on every protocol receive it)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["room", "event"],
                    "properties": {"room": room_schema(),
                        "event": {"type": "string", "minLength": 1, "maxLength": 128,
                            "not": {"enum": ["connect", "connect_error", "disconnect", "disconnecting",
                                "newListener", "removeListener", "presence", "kick", "refresh"]}},
                        "data": {},
                        "volatile": {"type": "boolean", "default": false,
                            "description": "May be dropped for slow consumers (kept in history)"}}}}}},
                "responses": ok(json!({"type": "object", "required": ["offset"],
                    "properties": {"offset": {"type": "integer"}}}))
            }},
            "/disconnect": {"post": {
                "summary": "Disconnect a user's connections or one socket, with or without leave to reconnect",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object",
                    "oneOf": [
                        {"required": ["user"], "not": {"required": ["socket"]}},
                        {"required": ["socket"], "not": {"required": ["user"]}}
                    ],
                    "properties": {"user": {"type": "string"}, "socket": {"type": "string"},
                        "reason": {"type": "string", "nullable": true},
                        "reconnect": {"type": "boolean"}}}}}},
                "responses": ok(json!({"type": "object", "required": ["disconnected"],
                    "properties": {"disconnected": {"type": "integer"}}}))
            }},
            "/presence/{room}": {"get": {
                "summary": "Users present in a room",
                "parameters": [path_param("room", "the room")],
                "responses": ok(json!({"type": "array", "items": present}))
            }},
            "/users/{user}": {"get": {
                "summary": "A user's status (404 for a user never seen)",
                "parameters": [path_param("user", "the user id")],
                "responses": ok(json!({"type": "object", "required": ["user", "online", "connections", "last_seen"],
                    "properties": {"user": {"type": "string"}, "online": {"type": "boolean"},
                        "connections": {"type": "integer"}, "last_seen": {"type": "string", "format": "date-time"}}}))
            }},
            "/rooms": {"get": {
                "summary": "Rooms with members or history",
                "responses": ok(json!({"type": "array", "items": {"type": "object",
                    "properties": {"room": {"type": "string"}, "epoch": {"type": "string"},
                        "offset": {"type": "integer"}, "users": {"type": "integer"},
                        "connections": {"type": "integer"}}}}))
            }},
            "/sockets": {"get": {
                "summary": "Connections, all or those in a room",
                "parameters": [
                    {"name": "room", "in": "query", "required": false, "schema": {"type": "string"}},
                    query_int("limit", "at most this many (default 1000, at most 10000)")
                ],
                "responses": ok(json!({"type": "array", "items": {"type": "object",
                    "properties": {"socket": {"type": "string"}, "user": {"type": "string", "nullable": true},
                        "protocol": {"type": "string", "enum": ["socketio", "native"]},
                        "transport": {"type": "string", "enum": ["polling", "websocket"]}}}}))
            }},
            "/history/{room}": {"get": {
                "summary": "A room's messages, oldest first (without since: the newest `limit`)",
                "parameters": [path_param("room", "the room"),
                    query_int("since", "messages after this offset"),
                    query_int("limit", "at most this many (at most 1000)")],
                "responses": ok(json!({"type": "object", "required": ["epoch", "messages"],
                    "properties": {"epoch": {"type": "string"}, "messages": {"type": "array", "items": message}}}))
            }},
            "/record": {
                "post": {
                    "summary": "Start a capture of a room (what a native member receives) or of one connection (every frame both ways)",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object",
                        "oneOf": [
                            {"required": ["room"], "not": {"required": ["socket"]}},
                            {"required": ["socket"], "not": {"required": ["room"]}}
                        ],
                        "properties": {"room": room_schema(),
                            "socket": {"type": "string", "minLength": 1},
                            "duration": {"type": "number", "exclusiveMinimum": true, "minimum": 0,
                                "maximum": 3600, "default": 60,
                                "description": "seconds (a socket capture also ends with its connection)"}}}}}},
                    "responses": accepted(capture.clone())
                },
                "get": {
                    "summary": "Captures, running and done, oldest first",
                    "responses": ok(json!({"type": "array", "items": capture}))
                }
            },
            "/record/{id}": {"get": {
                "summary": "Download a capture (NDJSON; a running one as far as it got)",
                "parameters": [path_param("id", "the capture id")],
                "responses": ndjson()
            }},
            "/stats": {"get": {
                "summary": "Counters of the server (of every node of a cluster)",
                "responses": ok(json!({"type": "object",
                    "properties": {"nodes": {"type": "integer"}, "connections": {"type": "object"}, "users_online": {"type": "integer"},
                        "rooms": {"type": "integer"}, "uptime_s": {"type": "integer"}}}))
            }}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "An error", "content": {"application/json": {"schema": {
                "type": "object", "required": ["error"],
                "properties": {"error": {"type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}}}}}
        }
    })
}

"""``/openapi.json`` documents what every route returns, how it fails, and how to authenticate."""

from __future__ import annotations

from typing import Any

import httpx

METHODS = ("get", "put", "post", "delete", "patch")


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _typed(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    """True when the schema says what the value is (a type, a reference, a union of such, ...)."""
    schema = _resolve(spec, schema)
    if "anyOf" in schema or "oneOf" in schema or "allOf" in schema:
        options = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
        return all(_typed(spec, s) for s in options)
    if schema.get("type") == "object":
        return bool(schema.get("properties"))
    if schema.get("type") == "array":
        return "items" in schema and _typed(spec, schema["items"])
    return "type" in schema or "const" in schema or "enum" in schema


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op) for path, item in spec["paths"].items() for method, op in item.items() if method in METHODS
    ]


async def test_every_success_response_is_a_typed_envelope(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    problems = []
    operations = _operations(spec)
    assert len(operations) >= 40
    for path, method, op in operations:
        successes = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        if not successes:
            problems.append(f"{method.upper()} {path}: no 2xx response")
        for code, response in successes.items():
            content = response.get("content", {})
            if "application/json" not in content:
                if not content:
                    problems.append(f"{method.upper()} {path} {code}: no content documented")
                continue  # a file download (application/zip) documents its own media type
            schema = _resolve(spec, content["application/json"].get("schema", {}))
            properties = schema.get("properties", {})
            if not properties:
                problems.append(f"{method.upper()} {path} {code}: untyped body {schema}")
                continue
            if path.startswith("/v1/"):
                continue  # the gateway's OpenAI-compatible routes answer in OpenAI's shapes, typed
            if set(properties) < {"success", "data", "message", "timestamp", "request_id"}:
                problems.append(f"{method.upper()} {path} {code}: not an envelope ({sorted(properties)})")
                continue
            if not _typed(spec, properties["data"]):
                problems.append(f"{method.upper()} {path} {code}: `data` is untyped {properties['data']}")
    assert problems == [], "\n".join(problems)


async def test_errors_are_documented_as_the_error_envelope(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path, method, op in _operations(spec):
        errors = {code: r for code, r in op["responses"].items() if code[0] in "45"}
        assert errors, f"{method.upper()} {path} documents no error response"
        for code, response in errors.items():
            ref = response["content"]["application/json"]["schema"]["$ref"]
            # OpenAI-compatible routes (/v1) fail in OpenAI's format: {"error": {message, type, param, code}}.
            expected = "/OpenAIErrorBody" if path.startswith("/v1/") else "/ErrorEnvelope"
            assert ref.endswith(expected), (method, path, code, ref)
        assert "HTTPValidationError" not in str(op)
    error = spec["components"]["schemas"]["ErrorEnvelope"]
    assert set(error["properties"]) == {"success", "error", "timestamp", "request_id"}


async def test_security_schemes_follow_each_routes_permission(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert schemes["apiKeyAuth"] == {**schemes["apiKeyAuth"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    public = {
        ("/api/v2/health", "get"),
        ("/api/v2/health/ready", "get"),
        ("/auth/login", "post"),
        ("/auth/refresh", "post"),
    }
    for path, method, op in _operations(spec):
        if (path, method) in public:
            assert "security" not in op, (method, path)
            assert "401" not in op["responses"] and "403" not in op["responses"], (method, path)
        else:
            assert op["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}], (method, path)
    assert spec["paths"]["/api/v2/agents"]["post"]["x-permission"] == "agent:write"
    assert "x-permission" not in spec["paths"]["/auth/profile"]["get"]  # any logged-in user


async def test_documented_models_match_what_routes_return(client: httpx.AsyncClient, login: Any) -> None:
    """A few routes' bodies against their schema's field names (the response models drop nothing)."""
    spec = (await client.get("/openapi.json")).json()
    headers = await login("admin")
    for path, model in (("/auth/profile", "UserProfile"), ("/api/v2/system/stats", "SystemStats")):
        body = (await client.get(path, headers=headers)).json()
        assert set(body["data"]) == set(spec["components"]["schemas"][model]["properties"]), path
    agents = (await client.get("/api/v2/agents", headers=headers)).json()["data"]["items"]
    assert agents and set(agents[0]) == set(spec["components"]["schemas"]["AgentPublic"]["properties"])

"""Validates request bodies against a vendor's published OpenAPI 3 contract
(or a Swagger 2.0 one, as Iterable publishes: the body is the parameter
`in: body`, and $refs point into #/definitions).

    contract = OpenApi("/path/to/contacts.v3.json")
    errors = contract.validate_request("POST", "/crm/v3/objects/contacts/batch/create", body)

`errors` is a list of readable strings (empty when the body conforms). The
operation is found by matching the path against the contract's path
templates ({param} matches one segment); Swagger 2.0 body parameters (#/definitions/...) and JSON:API bodies
(application/vnd.api+json) are read too. `aliases` maps a path prefix to
the one the contract documents (HubSpot publishes one document per object,
with the same batch schemas for every object type). $refs to
#/components/... are resolved within the document. Uses Debian's
python3-jsonschema."""

import json
import re

import jsonschema


def _load_yaml(path):
    """A YAML contract (Zendesk publishes one). Its unquoted `=` scalars trip
    PyYAML's YAML 1.1 "value" tag: read as plain strings, as YAML 1.2 does.
    OpenAPI 3.0's `nullable: true` becomes JSON Schema's null type (_nullable)."""
    import yaml
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(loader):
        pass

    Loader.add_constructor("tag:yaml.org,2002:value", lambda l, n: l.construct_scalar(n))
    with open(path) as f:
        doc = yaml.load(f, Loader=Loader)

    _nullable(doc)
    return doc


def _nullable(node):
    """OpenAPI 3.0's `nullable: true` becomes JSON Schema's null type."""
    if isinstance(node, dict):
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        for v in node.values():
            _nullable(v)
    elif isinstance(node, list):
        for v in node:
            _nullable(v)


class OpenApi:
    def __init__(self, path, aliases=None):
        if path.endswith((".yaml", ".yml")):
            self.doc = _load_yaml(path)
        else:
            with open(path) as f:
                self.doc = json.load(f)
            if str(self.doc.get("openapi", "")).startswith("3.0"):
                _nullable(self.doc)  # Klaviyo's is 3.0 JSON
        self.aliases = aliases or []
        self.templates = []
        for template, item in self.doc.get("paths", {}).items():
            pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
            self.templates.append((re.compile(pattern), template, item))
        # A literal segment wins over a parameter (/persons/search before
        # /persons/{id}), as in OpenAPI's own matching rule.
        self.templates.sort(key=lambda t: t[1].count("{"))

    def operation(self, method, path):
        path = path.split("?", 1)[0]
        for pattern, replacement in self.aliases:
            path = re.sub(pattern, replacement, path)
        for regex, template, item in self.templates:
            if regex.match(path):
                op = item.get(method.lower())
                if op is not None:
                    return template, op
        return None, None

    def request_schema(self, method, path):
        template, op = self.operation(method, path)
        if op is None:
            return None, None
        for param in op.get("parameters", []):
            if param.get("in") == "body":  # Swagger 2.0
                return template, param.get("schema")
        content = op.get("requestBody", {}).get("content", {})
        schema = (content.get("application/json") or content.get("application/vnd.api+json") or {}).get("schema")
        return template, schema

    def validate_request(self, method, path, body):
        template, schema = self.request_schema(method, path)
        if template is None:
            return [f"{method} {path}: no such operation in the contract"]
        if schema is None:
            return []
        # The root holds the components (definitions in Swagger 2.0), so
        # "#/components/schemas/X" and "#/definitions/X" resolve.
        root = {"components": self.doc.get("components", {}), "definitions": self.doc.get("definitions", {})}
        root.update(schema)
        validator = jsonschema.Draft7Validator(root)
        errors = []
        for e in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in e.absolute_path) or "(body)"
            errors.append(f"{method} {template}: {where}: {e.message}")
        return errors

    def validate_query(self, method, path, query):
        """The query string's parameters against the operation's declared
        query parameters: required ones present, each value of its schema
        (a boolean or integer parameter given as text is read as one)."""
        from urllib.parse import parse_qs
        template, op = self.operation(method, path)
        if op is None:
            return [f"{method} {path}: no such operation in the contract"]
        given = parse_qs(query or "", keep_blank_values=True)
        errors = []
        for param in op.get("parameters", []):
            if "$ref" in param:
                param = self._resolve(param["$ref"])
            if param.get("in") != "query":
                continue
            name, schema = param.get("name"), dict(param.get("schema", {}))
            if name not in given:
                if param.get("required"):
                    errors.append(f"{method} {template}: query parameter {name} is required")
                continue
            value = given[name][-1]
            kind = schema.get("type")
            try:
                if kind == "boolean":
                    if value not in ("true", "false", "0", "1"):
                        raise ValueError(value)
                    value = value in ("true", "1")
                elif kind == "integer":
                    value = int(value)
            except ValueError:
                errors.append(f"{method} {template}: query parameter {name}: {value!r} is not of type {kind}")
                continue
            if "enum" in schema and value not in schema["enum"]:
                errors.append(f"{method} {template}: query parameter {name}: {value!r} is not one of {schema['enum']}")
        return errors

    def _resolve(self, ref):
        node = self.doc
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return node


def hubspot_contract(path):
    """HubSpot's CRM objects v3 contract (published for contacts), applied to
    every object type's batch endpoints."""
    return OpenApi(path, aliases=[(r"^/crm/v3/objects/[^/]+/", "/crm/v3/objects/contacts/")])

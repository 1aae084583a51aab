"""Validates request bodies against a vendor's published OpenAPI 3 contract.

    contract = OpenApi("/path/to/contacts.v3.json")
    errors = contract.validate_request("POST", "/crm/v3/objects/contacts/batch/create", body)

`errors` is a list of readable strings (empty when the body conforms). The
operation is found by matching the path against the contract's path
templates ({param} matches one segment); `aliases` maps a path prefix to
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
        content = op.get("requestBody", {}).get("content", {})
        # JSON:API vendors (Klaviyo) declare their bodies under their own media type.
        media = content.get("application/json") or content.get("application/vnd.api+json") or {}
        schema = media.get("schema")
        return template, schema

    def validate_request(self, method, path, body):
        template, schema = self.request_schema(method, path)
        if template is None:
            return [f"{method} {path}: no such operation in the contract"]
        if schema is None:
            return []
        # The root holds the components, so "#/components/schemas/X" resolves.
        root = {"components": self.doc.get("components", {})}
        root.update(schema)
        validator = jsonschema.Draft7Validator(root)
        errors = []
        for e in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in e.absolute_path) or "(body)"
            errors.append(f"{method} {template}: {where}: {e.message}")
        return errors


def hubspot_contract(path):
    """HubSpot's CRM objects v3 contract (published for contacts), applied to
    every object type's batch endpoints."""
    return OpenApi(path, aliases=[(r"^/crm/v3/objects/[^/]+/", "/crm/v3/objects/contacts/")])

"""A small validator of requests against a Postman collection in the exploded
layout of pozil/postman-extractor (one JSON file per request: method, url,
headerData, rawModeData, data, dataMode, queryParams), which is how
Salesforce's own collection is saved in /work/shared/vendor-specs/salesforce/
(see its SOURCE.md: Salesforce publishes no OpenAPI for these endpoints).

What such a collection can say about a request, and so what is checked:
  * that the method and path match one of its requests ({{var}}, <NAME> and
    :name are path parameters);
  * the Content-Type its request sends;
  * for raw JSON bodies: the members its example body has must be present
    (the example's placeholder values "Boolean" and "SObject[]" also give
    their types);
  * for urlencoded bodies: the form keys it lists must be present;
  * the query parameters it lists as required (description "Required.").
`extra` adds requests from the vendor's documentation that the collection
lacks or gets wrong (same dict layout)."""

import json
import os
import re
from urllib.parse import parse_qs


def _path_regex(url):
    url = url.split("?", 1)[0]
    url = re.sub(r"^\{\{[^}]+\}\}(\{\{[^}]+\}\})?", "", url)  # {{_endpoint}}, {{url}}{{site}}
    parts = []
    for seg in url.strip("/").split("/"):
        if seg.startswith(":") or re.fullmatch(r"<[^>]+>", seg) or re.fullmatch(r"\{\{[^}]+\}\}", seg):
            parts.append("[^/]+")
        else:
            pieces = re.split(r"(\{\{[^}]+\}\})", seg)
            parts.append("".join("[^/]+" if p.startswith("{{") else re.escape(p) for p in pieces))
    return re.compile("^/" + "/".join(parts) + "/?$")


class Postman:
    def __init__(self, root, extra=()):
        self.requests = []
        for dirpath, _, files in os.walk(root):
            for name in sorted(files):
                if not name.endswith(".json"):
                    continue
                try:
                    with open(os.path.join(dirpath, name)) as f:
                        d = json.load(f)
                except (ValueError, OSError):
                    continue
                if isinstance(d, dict) and isinstance(d.get("method"), str) and isinstance(d.get("url"), str):
                    d["_name"] = os.path.relpath(os.path.join(dirpath, name), root)
                    self.requests.append(d)
        for d in extra:
            self.requests.append(dict(d, _name=d.get("_name", "documentation")))
        for d in self.requests:
            d["_re"] = _path_regex(d["url"])

    def find(self, method, path):
        """The collection's requests of this method and path, more specific
        templates (fewer parameters) first."""
        matches = [d for d in self.requests if d["method"] == method and d["_re"].match(path)]
        matches.sort(key=lambda d: d["_re"].pattern.count("[^/]+"))
        return matches

    def validate(self, method, path, query, headers, raw):
        """Errors (a list of strings) of one request; headers lower-cased.
        Several requests may share a path (the token endpoint's grants): the
        request is valid when it fits one of them."""
        candidates = self.find(method, path)
        if not candidates:
            return [f"{method} {path}: no such request in the collection"]
        best = None
        for d in candidates:
            errors = self._check(d, query, headers, raw)
            if not errors:
                return []
            if best is None or len(errors) < len(best):
                best = errors
        return best

    def _check(self, d, query, headers, raw):
        errors = []
        want_type = None
        for h in d.get("headerData") or []:
            if isinstance(h, dict) and str(h.get("key", "")).lower() == "content-type" and not h.get("disabled"):
                want_type = h.get("value")
        if want_type and raw:
            got = headers.get("content-type", "").split(";")[0].strip()
            if got != want_type:
                errors.append(f"{d['_name']}: Content-Type {got!r}, the collection sends {want_type!r}")
        q = parse_qs(query or "", keep_blank_values=True)
        for p in d.get("queryParams") or []:
            if str(p.get("description", "")).startswith("Required") and p.get("key") not in q:
                errors.append(f"{d['_name']}: query parameter {p.get('key')!r} missing")
        mode = d.get("dataMode")
        if mode == "raw" and d.get("rawModeData"):
            try:
                example = json.loads(d["rawModeData"])
            except ValueError:
                example = None
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return errors + [f"{d['_name']}: body is not JSON"]
            if isinstance(example, dict):
                if not isinstance(body, dict):
                    return errors + [f"{d['_name']}: body is not a JSON object"]
                for k, v in example.items():
                    if k not in body:
                        errors.append(f"{d['_name']}: member {k!r} missing")
                    elif v == "Boolean" and not isinstance(body[k], bool):
                        errors.append(f"{d['_name']}: {k!r} is not a boolean")
                    elif isinstance(v, str) and v.endswith("[]") and not isinstance(body[k], list):
                        errors.append(f"{d['_name']}: {k!r} is not an array")
        elif mode == "urlencoded":
            form = parse_qs(raw.decode() if isinstance(raw, bytes) else (raw or ""), keep_blank_values=True)
            for item in d.get("data") or []:
                if item.get("key") not in form:
                    errors.append(f"{d['_name']}: form key {item.get('key')!r} missing")
        return errors

"""Checks requests to Meta's Custom Audience users endpoint against Meta's
own API spec files (facebook-business-sdk-codegen, saved in
../shared/vendor-specs/meta/): the method and endpoint must be declared in
CustomAudience.json, every form parameter must be one of the endpoint's
declared params, and the inside of `payload` and `session` (typed only as
Object there) must follow the shape SOURCE.md restates from Meta's docs and
SDK helper: schema keys, rows as long as the schema, SHA-256 hex for hashed
keys, at most 10,000 rows, session fields of the right types.

Python 3 standard library only."""

import json
import os
import re

HEX64 = re.compile(r"^[0-9a-f]{64}$")
# Multi-key schema keys (SOURCE.md; Meta's docs and customaudiencemixin).
SCHEMA_KEYS = {"EXTERN_ID", "EMAIL", "PHONE", "GEN", "DOBY", "DOBM", "DOBD", "LN", "FN", "FI", "CT", "ST",
               "ZIP", "COUNTRY", "MADID", "APPUID", "LOOKALIKE_VALUE"}
# Sent as they are (Meta's hashing table): everything else is a SHA-256 hash.
UNHASHED = {"EXTERN_ID", "MADID", "LOOKALIKE_VALUE"}
MAX_ROWS = 10000


class MetaSpec:
    def __init__(self, folder):
        with open(os.path.join(folder, "CustomAudience.json")) as f:
            spec = json.load(f)
        self.apis = {}
        for api in spec["apis"]:
            if "endpoint" in api:
                self.apis[(api["method"], api["endpoint"])] = {p["name"]: p for p in api.get("params", [])}
        with open(os.path.join(folder, "CustomAudienceSession.json")) as f:
            self.session_fields = {fld["name"] for fld in json.load(f)["fields"]}

    def validate_request(self, method, endpoint, form):
        """Errors (strings) of one call: `endpoint` is the edge after the
        audience id ("users"), `form` the decoded form fields."""
        errors = []
        params = self.apis.get((method, endpoint))
        if params is None:
            return [f"{method} /{{custom_audience_id}}/{endpoint} is not in Meta's CustomAudience spec"]
        for name in form:
            if name not in params and name != "access_token":
                errors.append(f"form field {name!r} is not a param of {method} {endpoint}")
        for name, p in params.items():
            if p.get("required") and name not in form:
                errors.append(f"required param {name!r} is missing")
        if "payload" in form:
            errors.extend(self.check_payload(form["payload"]))
        else:
            errors.append("no payload")
        if "session" in form:
            errors.extend(self.check_session(form["session"]))
        return errors

    def check_payload(self, text):
        try:
            payload = json.loads(text)
        except ValueError as exc:
            return [f"payload is not JSON: {exc}"]
        if not isinstance(payload, dict):
            return ["payload is not an object"]
        errors = []
        for k in payload:
            if k not in ("schema", "data", "is_raw", "app_ids"):
                errors.append(f"payload has an unknown member {k!r}")
        schema, data = payload.get("schema"), payload.get("data")
        if not isinstance(schema, list) or not schema or not all(isinstance(s, str) for s in schema):
            return errors + ["payload.schema is not a non-empty array of keys (multi-key form)"]
        for s in schema:
            if s not in SCHEMA_KEYS:
                errors.append(f"payload.schema has an unknown key {s!r}")
        if len(set(schema)) != len(schema):
            errors.append("payload.schema repeats a key")
        if "APPUID" in schema and "app_ids" not in payload:
            errors.append("APPUID needs app_ids")
        if not isinstance(data, list) or not data:
            return errors + ["payload.data is not a non-empty array"]
        if len(data) > MAX_ROWS:
            errors.append(f"payload.data has {len(data)} rows, more than {MAX_ROWS}")
        for n, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(schema):
                errors.append(f"payload.data[{n}] is not a row of {len(schema)} values")
                continue
            for key, value in zip(schema, row):
                if not isinstance(value, str):
                    errors.append(f"payload.data[{n}] {key} is not a string")
                elif key not in UNHASHED and not HEX64.match(value):
                    errors.append(f"payload.data[{n}] {key} is not a SHA-256 hash in lower-case hex")
            if len(errors) > 20:
                break
        return errors

    def check_session(self, text):
        try:
            session = json.loads(text)
        except ValueError as exc:
            return [f"session is not JSON: {exc}"]
        if not isinstance(session, dict):
            return ["session is not an object"]
        errors = []
        for k in session:
            if k not in ("session_id", "batch_seq", "last_batch_flag", "estimated_num_total"):
                errors.append(f"session has an unknown member {k!r}")
        if "session_id" not in self.session_fields:
            errors.append("Meta's session spec has no session_id")
        sid = session.get("session_id")
        if not isinstance(sid, int) or isinstance(sid, bool) or not 0 < sid < 2 ** 63:
            errors.append("session.session_id is not a positive int64")
        seq = session.get("batch_seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            errors.append("session.batch_seq is not an integer from 1")
        if not isinstance(session.get("last_batch_flag"), bool):
            errors.append("session.last_batch_flag is not a boolean")
        est = session.get("estimated_num_total")
        if est is not None and (not isinstance(est, int) or isinstance(est, bool) or est < 0):
            errors.append("session.estimated_num_total is not a non-negative integer")
        return errors

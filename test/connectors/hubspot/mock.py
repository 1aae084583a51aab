#!/usr/bin/env python3
"""Stateful mock of HubSpot's CRM v3 batch API (contacts, companies) for revetl tests.

Usage:
    python3 test/connectors/hubspot/mock.py [--port N] [--port-file PATH] [--token TOKEN]
                                 [--seed N] [--journal-file PATH]

Python 3.11 standard library only; binds 127.0.0.1 only. Facts marked "ref" below come
from /work/shared/reference/destinations.md section 1 (HubSpot CRM v3). "[S]" marks
details NOT in that file, taken from recorded HubSpot responses in public connector test
fixtures and from a public write-up of calls to a live portal (secondary sources: check
them against the real API before relying on them). Everything marked "choice" is this
mock's decision where the sources are silent.

HubSpot behaviours emulated
  * Endpoints (ref): POST /crm/v3/objects/{contacts|companies}/batch/{upsert,update,
    archive,create,read}; "0-1" and "0-2" are accepted as object types too (choice).
  * Auth (ref): every API request needs `Authorization: Bearer <token>` (--token, default
    "test-token"; POST /_mock/config {"token"} rotates it to simulate a revoked token).
    Otherwise 401 {"status":"error","message":"Authentication credentials not found...",
    "correlationId","category":"INVALID_AUTHENTICATION"}.
  * Store per object type (ref: upsert by unique property): records
    {id, properties, createdAt, updatedAt, archived}; ids are strings of one increasing
    integer shared by both types, starting at 512 (choice). Unique properties: contacts
    `email` (ref, always unique); companies `domain` by default (choice from the revetl
    brief -- real HubSpot companies have NO unique property by default (ref), use
    "unique_properties": {"companies": []} or a custom one for that). Emails are
    lower-cased when stored and matched (HubSpot lower-cases emails [S]); other unique
    values match exactly (choice).
  * Property values (choice): strings are stored as sent; numbers and booleans are
    turned into strings ("true"/"false"); null and "" clear the property (ref for "");
    objects/arrays -> 400 for the whole batch.
  * Batch rules (ref): 1..100 inputs, else 400 VALIDATION_ERROR. The same id value twice
    in one upsert/update/read -> 400 {"message":"Duplicate IDs found in batch input: [x].
    IDs must be unique","context":{"ids":[x]},"category":"VALIDATION_ERROR"} and nothing
    is applied (email duplicates are detected after lower-casing). An idProperty that is
    not a unique property -> 400 "Unable to perform update/upsert by non-unique 0-1
    property firstname" (wording seen live [S]). Any other malformed body (invalid JSON,
    no `inputs` list, input without id/properties) -> 400 VALIDATION_ERROR, nothing applied.
  * upsert (ref): inputs {"idProperty","id","objectWriteTraceId"?,"properties"}; creates or
    merges; 200 {"status":"COMPLETE","results":[{"id","new","properties","createdAt",
    "updatedAt","archived":false}],"numErrors":0,"errors":[],"requestedAt","startedAt",
    "completedAt"}. The id value is written to the idProperty (it wins over a different
    properties[idProperty]; choice). idProperty is required (choice: real HubSpot treats a
    missing one as hs_object_id; here -> 400).
  * update (ref): inputs by {"id": "<hubspot id>"} or {"idProperty","id"}; properties are
    merged, "" clears. Unknown or archived record -> that input fails OBJECT_NOT_FOUND:
    answer 207 with the good records in `results` and ONE grouped error
    {"status":"error","category":"OBJECT_NOT_FOUND","message":"Could not get some CONTACT
    objects, they may be deleted or not exist. Check that ids are valid.",
    "context":{"ids":[...every missing id...]}} (ref shape). When every input fails the
    answer is still 207 with "results": [] (choice).
  * archive (ref): inputs {"id"} (record ids only; an idProperty is ignored) -> 204 with
    no body, always, whatever the records' state. Archived records leave the unique
    index: a later upsert of the same email CREATES A NEW record with a new id (choice;
    HubSpot's restore behaviour is not documented), and update/read treat them as missing.
  * create: inputs {"properties","objectWriteTraceId"?} -> 201 (choice, HubSpot's batch
    create status) with results without "new". A unique value already held by another
    active record (or by an earlier input of the same batch) -> per-record CONFLICT
    "Contact already exists. Existing ID: N" with context "existingId" [S] and 207.
  * read (optional endpoint): {"inputs":[{"id"}],"idProperty"?,"properties"?} -> 200, or
    207 with the OBJECT_NOT_FOUND error for missing ids. Requested properties that are
    not set come back as null; without "properties" every set property is returned.
  * Per-record errors: VALIDATION_ERROR (configured "invalid" rules) and CONFLICT fail only
    their input; the rest is applied and the answer is 207 (ref: partial failure).
    An input that carried objectWriteTraceId gets its own error with
    "context":{"objectWriteTraceId":[trace]} (ref); without one the context is
    {"ids":[idProperty value or record id]} (create: the first unique property value, or
    no "ids" at all). Validation messages look like HubSpot's [S]:
    'Property values were not valid: [{"isValid":false,"message":..,"error":..,"name":..}]'.
    Option "partial_requires_trace_id": true emulates the documented rule (ref: 207 is
    documented only when every input carries objectWriteTraceId; seen live [S]): then a
    VALIDATION_ERROR/CONFLICT in a batch where some input lacks objectWriteTraceId
    rejects the whole batch (400, or 409 for CONFLICT) and nothing is applied.
    Default false, as the revetl brief asked.
  * Result properties: the record's properties plus hs_object_id, createdate and
    lastmodifieddate (hs_lastmodifieddate for companies), as in recorded responses [S].
    Results come in input order (choice; real HubSpot does not promise an order [S] --
    "shuffle_results": true shuffles them with the seeded generator).
  * Rate limits (ref): a TEN_SECONDLY_ROLLING window (default 100 per 10000 ms) and a
    DAILY count (default 250000), over every authenticated API request. Over a limit ->
    429 {"status":"error","message":"You have reached your ten secondly limit." | "...your
    daily limit.","errorType":"RATE_LIMIT","correlationId","policyName":
    "TEN_SECONDLY_ROLLING"|"DAILY","category":"RATE_LIMITS"}. Every response of an admitted
    request (2xx, 207, 4xx alike) and every 429 carries X-HubSpot-RateLimit-Interval-
    Milliseconds, -Max, -Remaining, -Daily, -Daily-Remaining. No Retry-After (ref: none
    found). Choices: rejected (429) and 401 requests and injected faults do not use up
    either limit; DAILY is checked first; the daily count never rolls over by itself
    (set it with "daily_used"); with "rate_limit": null or "daily_limit": null that
    limit and its headers are off.
  * Contract (--openapi PATH): every API request body is validated against the request
    schema of its operation in HubSpot's published OpenAPI contract for CRM objects v3
    (test/lib/openapi.py; the contacts document serves every object type). A body that
    does not conform gets 400 VALIDATION_ERROR ("Invalid input JSON: ...", nothing
    applied, as HubSpot refuses it), its journal entry gets "contract_errors", and
    /_mock/stats counts it in "contract_violations".
  * Properties (ref: GET /crm/v3/properties/{objectType}, HubSpot's CRM properties API):
    GET only (else 405), no body; query parameters archived, properties, dataSensitivity,
    locale (others -> 400 VALIDATION_ERROR, journaled with "contract_errors" since the
    CRM objects contract does not cover this API). 200 {"results": [property...]}, each
    {"name","label","type","fieldType","description","groupName","options":[{"label",
    "value","displayOrder","hidden"}],"displayOrder","calculated","externalOptions",
    "hasUniqueValue","hidden","hubspotDefined","modificationMetadata":{"archivable",
    "readOnlyDefinition","readOnlyValue","readOnlyOptions"?},"formField","createdAt",
    "updatedAt","archived"} (shape of HubSpot's reference page). Standard properties per
    object (hs_object_id, createdate and the last-modified date read-only; email,
    firstname, lastname, lifecyclestage enumeration for contacts; name, domain for
    companies) plus custom ones (contacts: score number, vip bool, interests checkbox
    enumeration, signup_date date, last_seen datetime; choice). POST /_mock/config
    {"properties": {"contacts": [{"name","type"?,"fieldType"?,"readOnly"?,"options"?,
    "label"?}]}} REPLACES an object's custom properties. Unknown object -> 404. Counted
    by both rate limits like any API request.
  * Not emulated: associations, search, single-object endpoints, property existence and
    type checks (emulate with "invalid" rules, e.g. pattern "" matches any value),
    OAuth, the date-versioned /crm/objects/2026-03 paths, record restore, merges.

Mock conventions (same as test/connectors/webhook/mock.py)
  * HTTP/1.1 keep-alive; every response carries Content-Length; chunked request bodies and
    `Expect: 100-continue` are accepted; bodies over 16 MiB -> 413 and the connection closes.
  * Order for an API request: delay_ms, auth (401), fault (queue first, then the random
    rates), rate limits (429), routing (404 unknown path or object type, 405 not POST),
    body validation (400), per-record processing (200/201/204/207).
    API responses are application/json;charset=utf-8 in HubSpot's generic error shape.
  * Journal of every non-/_mock request (including 401/413/429 and faults):
    {"seq","method","path","headers" (lower-case names),"body" (parsed JSON or null),
    "raw" (text, only when the body is not JSON),"status" (null when the connection was
    reset),"time","fault"? ("queue"|"fail_rate"|"reset_rate"|"timeout_rate", only when
    injected)}. A request is journaled when its answer is decided, before it is sent.
    With --journal-file each entry is also appended as one JSON line.
  * Fault injection (POST /_mock/config):
      "faults": [...]   appended to a queue; each next authenticated API request consumes
                        one. Entry: exactly one of {"status": N, "body"?, "headers"?},
                        {"reset": true} (close the connection with a TCP RST, no answer),
                        {"timeout": true} (sleep, then answer normally -- the write IS
                        applied even if the client gave up); plus "delay_ms"? (wait before
                        answering/resetting; for timeout it replaces timeout_delay_ms).
                        A status fault's default body is the generic error shape with
                        category "MOCK_FAULT" (for 429: the ten-secondly body); a string
                        body is sent verbatim as text/plain.
      "fail_rate", "reset_rate", "timeout_rate": probabilities (sum <= 1) drawn with one
                        random.Random (seed "seed", default --seed 0) per API request when
                        the queue is empty; fail picks 500/502/503/504.
      "timeout_delay_ms": sleep of a timeout fault (default 30000).
      "delay_ms":       fixed wait before every API request is handled.
    Every sleep ends early when the server stops (SIGTERM); the request is then dropped.
  * Control API (JSON in and out; never needs the token, never journaled or rate limited):
      GET    /_mock/health    -> {"ok": true}
      GET    /_mock/requests  -> {"requests": [...]};  DELETE clears it (seq keeps going)
      GET    /_mock/records[?object=contacts|companies]
                              -> {"records": [{"object","id","properties","archived",
                                  "archivedAt"?,"createdAt","updatedAt","writes"}],
                                  "created_total": {"contacts": n, "companies": n}}
                                 writes = creates + updates of that record through the API;
                                 created_total counts API creates, archived ones included.
      POST   /_mock/records   {"object","records":[{"properties","archived"?}]} seeds records
                                 that exist "outside" the sync (writes 0, not in created_total)
      DELETE /_mock/records   -> clear both stores (ids restart at 512)
      GET    /_mock/stats     -> {"requests","rate_limited","by_status":{"200":n,..},
                                  "resets","timeouts","faults","daily_used"}
      GET    /_mock/config    -> current config
      POST   /_mock/config    -> any of "token", "unique_properties" ({"companies":
                 ["domain","external_id"]}; contacts must keep "email"), "invalid"
                 ([{"property","pattern","object"?,"message"?,"error"?}], replaces the
                 list; re.search on the input's value), "rate_limit" ({"max",
                 "interval_ms"} | null), "daily_limit" (N | null), "daily_used" (N),
                 "faults", "fail_rate", "reset_rate", "timeout_rate", "timeout_delay_ms",
                 "delay_ms", "seed" (re-seeds), "partial_requires_trace_id",
                 "shuffle_results"; returns the config. Unknown keys or bad values -> 400
                 and nothing changes.
      POST   /_mock/reset     -> clear journal, stores, stats, limits, fault queue; config
                                 back to the command-line defaults
    Unknown /_mock paths -> 404, wrong method on a known one -> 405 (with Allow).
  * --port 0 (default) picks a free port; --port-file gets the actual port written
    atomically (tmp file + rename) once listening, and is removed on clean exit.
    One line "mock_hubspot listening on http://127.0.0.1:PORT" goes to stdout;
    no per-request logging.
  * SIGTERM / SIGINT: stop serving (waking any sleeping request) and exit with status 0.
"""

import argparse
import collections
import copy
import datetime
import json
import os
import random
import re
import socket
import struct
import sys
import threading
import time
import traceback
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from mockserver import ClientGone, HttpError, StrictBodyReader, remove_quietly, serve  # noqa: E402
from mockserver import MockServer as SharedMockServer  # noqa: E402

HOST = "127.0.0.1"
MAX_BODY = 16 * 1024 * 1024
CONTROL_PREFIX = "/_mock"
FIRST_ID = 512
MAX_INPUTS = 100
RANDOM_FAULT_STATUSES = (500, 502, 503, 504)
API_CONTENT_TYPE = "application/json;charset=utf-8"
DEFAULT_TOKEN = "test-token"

OBJECTS = {
    "contacts": {"type_id": "0-1", "upper": "CONTACT", "label": "Contact",
                 "modified": "lastmodifieddate"},
    "companies": {"type_id": "0-2", "upper": "COMPANY", "label": "Company",
                  "modified": "hs_lastmodifieddate"},
}
OBJECT_ALIASES = {"contacts": "contacts", "0-1": "contacts",
                  "companies": "companies", "0-2": "companies"}
BATCH_PATH = re.compile(r"^/crm/v3/objects/([^/]+)/batch/([^/]+)$")
ACTIONS = ("upsert", "update", "archive", "create", "read")

AUTH_MESSAGE = ("Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview")
TEN_SECONDLY_MESSAGE = "You have reached your ten secondly limit."
DAILY_MESSAGE = "You have reached your daily limit."

CONFIG_KEYS = {
    "token", "unique_properties", "invalid", "rate_limit", "daily_limit", "daily_used",
    "faults", "fail_rate", "reset_rate", "timeout_rate", "timeout_delay_ms", "delay_ms",
    "seed", "partial_requires_trace_id", "shuffle_results", "properties",
}
PROPERTIES_PATH = re.compile(r"^/crm/v3/properties/([^/]+)$")
PROPERTIES_QUERY = {"archived", "properties", "dataSensitivity", "locale"}
LIFECYCLE_STAGES = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
                    "opportunity", "customer", "evangelist", "other"]
STANDARD_PROPERTIES = {
    "contacts": [
        {"name": "email", "label": "Email", "type": "string", "fieldType": "text"},
        {"name": "firstname", "label": "First Name", "type": "string", "fieldType": "text"},
        {"name": "lastname", "label": "Last Name", "type": "string", "fieldType": "text"},
        {"name": "lifecyclestage", "label": "Lifecycle Stage", "type": "enumeration",
         "fieldType": "radio", "options": LIFECYCLE_STAGES},
        {"name": "hs_object_id", "label": "Record ID", "type": "number", "fieldType": "number",
         "readOnly": True},
        {"name": "createdate", "label": "Create Date", "type": "datetime", "fieldType": "date",
         "readOnly": True},
        {"name": "lastmodifieddate", "label": "Last Modified Date", "type": "datetime",
         "fieldType": "date", "readOnly": True},
    ],
    "companies": [
        {"name": "name", "label": "Company name", "type": "string", "fieldType": "text"},
        {"name": "domain", "label": "Company Domain Name", "type": "string", "fieldType": "text"},
        {"name": "hs_object_id", "label": "Record ID", "type": "number", "fieldType": "number",
         "readOnly": True},
        {"name": "createdate", "label": "Create Date", "type": "datetime", "fieldType": "date",
         "readOnly": True},
        {"name": "hs_lastmodifieddate", "label": "Last Modified Date", "type": "datetime",
         "fieldType": "date", "readOnly": True},
    ],
}
DEFAULT_CUSTOM_PROPERTIES = {
    "contacts": [
        {"name": "score", "label": "Score", "type": "number", "fieldType": "number"},
        {"name": "vip", "label": "VIP", "type": "bool", "fieldType": "booleancheckbox",
         "options": ["true", "false"]},
        {"name": "interests", "label": "Interests", "type": "enumeration", "fieldType": "checkbox",
         "options": ["sports", "music", "travel"]},
        {"name": "signup_date", "label": "Signup date", "type": "date", "fieldType": "date"},
        {"name": "last_seen", "label": "Last seen", "type": "datetime", "fieldType": "date"},
    ],
    "companies": [],
}
PROPERTY_TYPES = {"string", "number", "date", "datetime", "enumeration", "bool",
                  "phone_number", "object_coordinates", "json"}


def validate_properties(given):
    if not isinstance(given, dict) or set(given) - set(OBJECTS):
        raise config_error(f"'properties' must map {sorted(OBJECTS)} to lists")
    for name, props in given.items():
        if not isinstance(props, list):
            raise config_error(f"properties.{name} must be a list")
        for p in props:
            if (not isinstance(p, dict) or not isinstance(p.get("name"), str) or not p["name"]
                    or set(p) - {"name", "label", "type", "fieldType", "readOnly", "options"}
                    or p.get("type", "string") not in PROPERTY_TYPES
                    or not isinstance(p.get("options", []), list)
                    or not isinstance(p.get("readOnly", False), bool)):
                raise config_error(f"properties.{name}: bad property {p!r}")


def api_property(p, hubspot_defined, created):
    """One property as GET /crm/v3/properties answers it."""
    read_only = p.get("readOnly", False)
    return {
        "name": p["name"], "label": p.get("label", p["name"]), "type": p.get("type", "string"),
        "fieldType": p.get("fieldType", "text"), "description": "",
        "groupName": "contactinformation",
        "options": [{"label": o.capitalize(), "value": o, "displayOrder": i, "hidden": False}
                    for i, o in enumerate(p.get("options", []))],
        "displayOrder": -1, "calculated": False, "externalOptions": False,
        "hasUniqueValue": p["name"] in ("email", "hs_object_id"), "hidden": False,
        "hubspotDefined": hubspot_defined,
        "modificationMetadata": {"archivable": not hubspot_defined,
                                 "readOnlyDefinition": hubspot_defined,
                                 "readOnlyValue": read_only},
        "formField": not read_only, "createdAt": created, "updatedAt": created,
        "archived": False,
    }
FAULT_KEYS = {"status", "body", "headers", "delay_ms", "reset", "timeout"}


# -- small helpers --------------------------------------------------------------------

def is_int(value):
    # bool is a subclass of int in Python; JSON true must not pass as a number.
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def iso_time(epoch):
    """UTC timestamp the way HubSpot writes them: 2024-05-01T12:00:00.123Z."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_now():
    return iso_time(time.time())


def correlation_id():
    return str(uuid.uuid4())


def hubspot_error(message, category, **extra):
    """HubSpot's generic error body (ref: destinations.md section 1)."""
    body = {"status": "error", "message": message, "correlationId": correlation_id()}
    body.update(extra)
    body["category"] = category
    return body


def rate_limit_body(policy):
    message = DAILY_MESSAGE if policy == "DAILY" else TEN_SECONDLY_MESSAGE
    return {"status": "error", "message": message, "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(), "policyName": policy,
            "category": "RATE_LIMITS"}


def default_fault_body(status):
    if status == 429:
        return rate_limit_body("TEN_SECONDLY_ROLLING")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "injected fault"
    return hubspot_error(phrase, "MOCK_FAULT")


def normalize(prop, value):
    """Unique-index key of a property value: emails are case-insensitive."""
    return value.lower() if prop == "email" else value


class ApiError(Exception):
    """A HubSpot-style whole-request error (generic error body)."""

    def __init__(self, status, message, category="VALIDATION_ERROR", headers=None, **extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category
        self.headers = headers or {}
        self.extra = extra

    def payload(self):
        return hubspot_error(self.message, self.category, **self.extra)


# -- request body parsing (whole-batch 400s) -------------------------------------------------

def bad_input(message):
    return ApiError(400, message, "VALIDATION_ERROR")


def batch_inputs(body):
    if not isinstance(body, dict):
        raise bad_input("Invalid input JSON: the body must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise bad_input("Invalid input JSON: 'inputs' must be a list")
    if not inputs:
        raise bad_input("The batch input must contain at least 1 item")
    if len(inputs) > MAX_INPUTS:
        raise bad_input(f"The maximum number of inputs supported in a batch request is "
                        f"{MAX_INPUTS}, got {len(inputs)}. Please reduce the number of "
                        f"items and try again")
    for i, inp in enumerate(inputs):
        if not isinstance(inp, dict):
            raise bad_input(f"Invalid input JSON: inputs[{i}] must be an object")
    return inputs


def input_id(inp, where):
    value = inp.get("id")
    if is_int(value):
        return str(value)
    if not isinstance(value, str) or not value:
        raise bad_input(f"Invalid input JSON: {where}.id must be a non-empty string")
    return value


def input_trace(inp, where):
    trace = inp.get("objectWriteTraceId")
    if trace is None:
        return None
    if is_int(trace):
        return str(trace)
    if not isinstance(trace, str):
        raise bad_input(f"Invalid input JSON: {where}.objectWriteTraceId must be a string")
    return trace


def property_value(value, where, name):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        return json.dumps(value)
    if isinstance(value, str):
        return value
    raise bad_input(f"Invalid input JSON: {where}.properties.{name} must be a string, "
                    f"number or boolean")


def input_properties(inp, where):
    props = inp.get("properties")
    if not isinstance(props, dict):
        raise bad_input(f"Invalid input JSON: {where}.properties must be an object")
    return {name: property_value(value, where, name) for name, value in props.items()}


def check_duplicates(keys):
    """keys: (property, normalized value) per input, in input order."""
    seen, dups = set(), []
    for key in keys:
        if key in seen and key[1] not in dups:
            dups.append(key[1])
        seen.add(key)
    if dups:
        raise ApiError(400, f"Duplicate IDs found in batch input: [{', '.join(dups)}]. "
                            f"IDs must be unique", "VALIDATION_ERROR", context={"ids": dups})


# -- config validation ------------------------------------------------------------------------

def config_error(message):
    return HttpError(400, message, "INVALID_CONFIG")


def validate_fault(i, fault):
    if not isinstance(fault, dict):
        raise config_error(f"faults[{i}] must be an object")
    unknown = set(fault) - FAULT_KEYS
    if unknown:
        raise config_error(f"faults[{i}] has unknown keys: {sorted(unknown)}")
    kinds = [k for k in ("status", "reset", "timeout") if k in fault]
    if len(kinds) != 1:
        raise config_error(f"faults[{i}] needs exactly one of 'status', 'reset', 'timeout'")
    if "status" in fault and (not is_int(fault["status"]) or not 200 <= fault["status"] <= 599):
        raise config_error(f"faults[{i}].status must be an integer in 200..599")
    for flag in ("reset", "timeout"):
        if flag in fault and fault[flag] is not True:
            raise config_error(f"faults[{i}].{flag} must be true")
    headers = fault.get("headers", {})
    if not isinstance(headers, dict) or not all(
            isinstance(v, str) or is_int(v) for v in headers.values()):
        raise config_error(f"faults[{i}].headers must map names to strings")
    if "delay_ms" in fault and (not is_number(fault["delay_ms"]) or fault["delay_ms"] < 0):
        raise config_error(f"faults[{i}].delay_ms must be a number >= 0")


def validate_invalid_rules(rules):
    if not isinstance(rules, list):
        raise config_error("'invalid' must be a list")
    compiled = []
    for i, rule in enumerate(rules):
        if (not isinstance(rule, dict) or not isinstance(rule.get("property"), str)
                or not isinstance(rule.get("pattern"), str)):
            raise config_error(f"invalid[{i}] needs 'property' and 'pattern' (strings)")
        unknown = set(rule) - {"property", "pattern", "object", "message", "error"}
        if unknown:
            raise config_error(f"invalid[{i}] has unknown keys: {sorted(unknown)}")
        if "object" in rule and rule["object"] not in OBJECTS:
            raise config_error(f"invalid[{i}].object must be one of {sorted(OBJECTS)}")
        for key in ("message", "error"):
            if key in rule and not isinstance(rule[key], str):
                raise config_error(f"invalid[{i}].{key} must be a string")
        try:
            pattern = re.compile(rule["pattern"])
        except re.error as exc:
            raise config_error(f"invalid[{i}].pattern: {exc}") from None
        compiled.append((rule, pattern))
    return compiled


def validate_rate(name, value):
    if not is_number(value) or not 0 <= value <= 1:
        raise config_error(f"'{name}' must be a number in 0..1")


# -- the store ----------------------------------------------------------------------------

class ObjectStore:
    """Records of one object type plus the index of their unique property values."""

    def __init__(self, name, unique):
        self.name = name
        self.meta = OBJECTS[name]
        self.records = {}        # id -> record
        self.unique = list(unique)
        self.index = {}          # property -> {normalized value -> id} (active records)
        self.created_total = 0
        self.rebuild_index()

    def rebuild_index(self):
        self.index = {prop: {} for prop in self.unique}
        for rid in sorted(self.records, key=int):
            if not self.records[rid]["archived"]:
                self._index_add(self.records[rid])

    def duplicate_value(self, unique):
        """First (property, value) held by two active records, or None."""
        for prop in unique:
            seen = set()
            for rec in self.records.values():
                value = rec["properties"].get(prop)
                if rec["archived"] or not value:
                    continue
                key = normalize(prop, value)
                if key in seen:
                    return prop, value
                seen.add(key)
        return None

    def _index_add(self, rec):
        for prop in self.unique:
            value = rec["properties"].get(prop)
            if value:
                self.index[prop].setdefault(normalize(prop, value), rec["id"])

    def _index_remove(self, rec):
        for prop in self.unique:
            value = rec["properties"].get(prop)
            if value:
                key = normalize(prop, value)
                if self.index[prop].get(key) == rec["id"]:
                    del self.index[prop][key]

    def find(self, prop, value):
        rid = self.index.get(prop, {}).get(normalize(prop, value))
        return self.records[rid] if rid is not None else None

    def active(self, rid):
        rec = self.records.get(rid)
        return rec if rec is not None and not rec["archived"] else None

    def conflict(self, props, self_id):
        """Id of another active record holding one of props' unique values, or None."""
        for prop in self.unique:
            value = props.get(prop)
            if value:
                owner = self.index[prop].get(normalize(prop, value))
                if owner is not None and owner != self_id:
                    return owner
        return None

    @staticmethod
    def _stored(prop, value):
        # HubSpot lower-cases emails [S]; the stored value is what later reads return.
        return value.lower() if prop == "email" else value

    def create(self, rid, props, now, via_api=True):
        rec = {
            "id": rid,
            "properties": {k: self._stored(k, v) for k, v in props.items() if v != ""},
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
            "writes": 1 if via_api else 0,
        }
        self.records[rid] = rec
        self._index_add(rec)
        if via_api:
            self.created_total += 1
        return rec

    def update(self, rec, props, now):
        self._index_remove(rec)
        for name, value in props.items():
            if value == "":
                rec["properties"].pop(name, None)  # "" clears (ref)
            else:
                rec["properties"][name] = self._stored(name, value)
        rec["updatedAt"] = now
        rec["writes"] += 1
        self._index_add(rec)

    def archive(self, rec, now):
        self._index_remove(rec)
        rec["archived"] = True
        rec["archivedAt"] = now
        rec["updatedAt"] = now

    def api_properties(self, rec, only=None):
        props = dict(rec["properties"])
        if only is not None:
            props = {name: rec["properties"].get(name) for name in only}
        props["hs_object_id"] = rec["id"]
        props["createdate"] = rec["createdAt"]
        props[self.meta["modified"]] = rec["updatedAt"]
        return props

    def api_record(self, rec, only=None):
        return {"id": rec["id"], "properties": self.api_properties(rec, only),
                "createdAt": rec["createdAt"], "updatedAt": rec["updatedAt"],
                "archived": rec["archived"]}


class Undo:
    """Undo log of one batch, used when a batch has to be rejected after processing."""

    def __init__(self, state, store):
        self.store = store
        self.saved = {}
        self.next_id = state.next_id
        self.created_total = store.created_total

    def touch(self, rid):
        if rid not in self.saved:
            self.saved[rid] = copy.deepcopy(self.store.records.get(rid))

    def rollback(self, state):
        for rid, old in self.saved.items():
            if old is None:
                self.store.records.pop(rid, None)
            else:
                self.store.records[rid] = old
        self.store.created_total = self.created_total
        state.next_id = self.next_id
        self.store.rebuild_index()


class Failure:
    """One input that failed; turned into an entry of `errors` in a 207."""

    def __init__(self, category, message, trace=None, ref=None, items=None, **context):
        self.category = category
        self.message = message
        self.trace = trace
        self.ref = ref
        self.items = items or []
        self.context = context


class MockState:
    """Everything the mock remembers. One lock guards all of it."""

    def __init__(self, token=DEFAULT_TOKEN, seed=0, journal_file=None):
        self.lock = threading.Lock()
        self.default_token = token
        self.default_seed = seed
        self.journal_file = journal_file  # open text file or None
        self.reset()

    # -- lifecycle / config ------------------------------------------------------------

    def reset(self):
        # Called at construction and by POST /_mock/reset (with the lock held).
        self.journal = []
        self.seq = 0
        self.stats = {"requests": 0, "rate_limited": 0, "by_status": {}, "resets": 0,
                      "timeouts": 0, "faults": 0, "contract_violations": 0}
        self.token = self.default_token
        self.unique = {"contacts": ["email"], "companies": ["domain"]}
        self.invalid_rules = []     # [(rule dict, compiled pattern)]
        self.rate_limit = {"max": 100, "interval_ms": 10000}
        self.window = collections.deque()  # monotonic times of admitted requests
        self.daily_limit = 250000
        self.daily_used = 0
        self.faults = collections.deque()
        self.fail_rate = 0.0
        self.reset_rate = 0.0
        self.timeout_rate = 0.0
        self.timeout_delay_ms = 30000
        self.delay_ms = 0
        self.partial_requires_trace_id = False
        self.shuffle_results = False
        self.custom_properties = copy.deepcopy(DEFAULT_CUSTOM_PROPERTIES)
        self.seed(self.default_seed)
        self.clear_store()

    def seed(self, seed):
        self.seed_value = seed
        self.rng = random.Random(seed)                  # fault draws
        self.shuffle_rng = random.Random(f"{seed}/shuffle")  # result order

    def clear_store(self):
        self.next_id = FIRST_ID
        self.stores = {name: ObjectStore(name, self.unique[name]) for name in OBJECTS}

    def config(self):
        return {
            "token": self.token,
            "unique_properties": {name: list(props) for name, props in self.unique.items()},
            "invalid": [rule for rule, _ in self.invalid_rules],
            "rate_limit": self.rate_limit,
            "daily_limit": self.daily_limit,
            "daily_used": self.daily_used,
            "faults": list(self.faults),
            "fail_rate": self.fail_rate,
            "reset_rate": self.reset_rate,
            "timeout_rate": self.timeout_rate,
            "timeout_delay_ms": self.timeout_delay_ms,
            "delay_ms": self.delay_ms,
            "seed": self.seed_value,
            "partial_requires_trace_id": self.partial_requires_trace_id,
            "shuffle_results": self.shuffle_results,
            "properties": copy.deepcopy(self.custom_properties),
        }

    def update_config(self, update):
        """Validate everything first, then apply: a bad config changes nothing."""
        if not isinstance(update, dict):
            raise config_error("config must be a JSON object")
        unknown = set(update) - CONFIG_KEYS
        if unknown:
            # Strict on purpose: a typo in a test's config should fail loudly.
            raise config_error(f"unknown config keys: {sorted(unknown)}")
        if "token" in update and (not isinstance(update["token"], str) or not update["token"]):
            raise config_error("'token' must be a non-empty string")
        unique = None
        if "unique_properties" in update:
            given = update["unique_properties"]
            if not isinstance(given, dict) or set(given) - set(OBJECTS):
                raise config_error(f"'unique_properties' must map {sorted(OBJECTS)} to lists")
            unique = {name: list(props) for name, props in self.unique.items()}
            for name, props in given.items():
                if not isinstance(props, list) or not all(
                        isinstance(p, str) and p for p in props):
                    raise config_error(f"unique_properties.{name} must be a list of names")
                unique[name] = list(dict.fromkeys(props))
            if "email" not in unique["contacts"]:
                raise config_error("unique_properties.contacts must include 'email'")
            for name, props in unique.items():
                dup = self.stores[name].duplicate_value(props)
                if dup:
                    raise config_error(f"{name}: two active records share {dup[0]}={dup[1]!r}")
        rules = validate_invalid_rules(update["invalid"]) if "invalid" in update else None
        if "properties" in update:
            validate_properties(update["properties"])
        if "rate_limit" in update:
            limit = update["rate_limit"]
            if limit is not None and (
                    not isinstance(limit, dict) or set(limit) != {"max", "interval_ms"}
                    or not is_int(limit["max"]) or limit["max"] < 1
                    or not is_number(limit["interval_ms"]) or limit["interval_ms"] <= 0):
                raise config_error("'rate_limit' must be null or {\"max\": N >= 1, "
                                   "\"interval_ms\": N > 0}")
        if "daily_limit" in update:
            limit = update["daily_limit"]
            if limit is not None and (not is_int(limit) or limit < 0):
                raise config_error("'daily_limit' must be null or an integer >= 0")
        if "daily_used" in update and (not is_int(update["daily_used"])
                                       or update["daily_used"] < 0):
            raise config_error("'daily_used' must be an integer >= 0")
        if "faults" in update:
            if not isinstance(update["faults"], list):
                raise config_error("'faults' must be a list")
            for i, fault in enumerate(update["faults"]):
                validate_fault(i, fault)
        rates = {}
        for name in ("fail_rate", "reset_rate", "timeout_rate"):
            rates[name] = update.get(name, getattr(self, name))
            validate_rate(name, rates[name])
        if sum(rates.values()) > 1:
            raise config_error("fail_rate + reset_rate + timeout_rate must be <= 1")
        for name in ("timeout_delay_ms", "delay_ms"):
            if name in update and update[name] is not None and (
                    not is_number(update[name]) or update[name] < 0):
                raise config_error(f"'{name}' must be a number >= 0")
        if "seed" in update and not is_int(update["seed"]):
            raise config_error("'seed' must be an integer")
        for name in ("partial_requires_trace_id", "shuffle_results"):
            if name in update and not isinstance(update[name], bool):
                raise config_error(f"'{name}' must be true or false")

        # All valid: apply.
        if "token" in update:
            self.token = update["token"]
        if unique is not None:
            self.unique = unique
            for name, store in self.stores.items():
                store.unique = list(unique[name])
                store.rebuild_index()
        if rules is not None:
            self.invalid_rules = rules
        if "properties" in update:
            self.custom_properties.update(copy.deepcopy(update["properties"]))
        if "rate_limit" in update:
            self.rate_limit = update["rate_limit"]
        if "daily_limit" in update:
            self.daily_limit = update["daily_limit"]
        if "daily_used" in update:
            self.daily_used = update["daily_used"]
        if "faults" in update:
            self.faults.extend(update["faults"])
        for name, value in rates.items():
            setattr(self, name, value)
        if "timeout_delay_ms" in update:
            self.timeout_delay_ms = update["timeout_delay_ms"] or 0
        if "delay_ms" in update:
            self.delay_ms = update["delay_ms"] or 0
        if "seed" in update:
            self.seed(update["seed"])
        for name in ("partial_requires_trace_id", "shuffle_results"):
            if name in update:
                setattr(self, name, update[name])
        return self.config()

    # -- journal and stats ----------------------------------------------------------------

    def add_journal(self, entry):
        """Append a journal entry (lock held); assigns its seq and counts it."""
        self.seq += 1
        entry = {"seq": self.seq, **entry}
        self.journal.append(entry)
        self.stats["requests"] += 1
        status = entry["status"]
        if status is None:
            self.stats["resets"] += 1
        else:
            key = str(status)
            self.stats["by_status"][key] = self.stats["by_status"].get(key, 0) + 1
        if entry.get("fault"):
            self.stats["faults"] += 1
        if self.journal_file is not None:
            self.journal_file.write(json.dumps(entry) + "\n")
            self.journal_file.flush()

    def stats_snapshot(self):
        return {**self.stats, "daily_used": self.daily_used}

    def records_snapshot(self, only=None):
        records = []
        for name in OBJECTS:
            if only is not None and name != only:
                continue
            store = self.stores[name]
            for rid in sorted(store.records, key=int):
                rec = store.records[rid]
                out = {"object": name, "id": rid, "properties": rec["properties"],
                       "archived": rec["archived"], "createdAt": rec["createdAt"],
                       "updatedAt": rec["updatedAt"], "writes": rec["writes"]}
                if "archivedAt" in rec:
                    out["archivedAt"] = rec["archivedAt"]
                records.append(out)
        return {"records": records,
                "created_total": {name: s.created_total for name, s in self.stores.items()}}

    def seed_records(self, body):
        if not isinstance(body, dict) or body.get("object") not in OBJECTS \
                or not isinstance(body.get("records"), list):
            raise HttpError(400, f"need {{\"object\": one of {sorted(OBJECTS)}, "
                                 f"\"records\": [...]}}", "INVALID_RECORDS")
        store = self.stores[body["object"]]
        undo = Undo(self, store)
        created = []
        now = iso_now()
        try:
            for i, item in enumerate(body["records"]):
                if not isinstance(item, dict) or not isinstance(item.get("archived", False), bool):
                    raise HttpError(400, f"records[{i}] must be {{\"properties\", \"archived\"?}}",
                                    "INVALID_RECORDS")
                try:
                    props = input_properties(item, f"records[{i}]")
                except ApiError as err:
                    raise HttpError(400, err.message, "INVALID_RECORDS") from None
                owner = store.conflict(props, None)
                if owner is not None and not item.get("archived", False):
                    raise HttpError(400, f"records[{i}] conflicts with record {owner}",
                                    "INVALID_RECORDS")
                rid = self.new_id()
                undo.touch(rid)
                if item.get("archived", False):
                    # Build it outside the index: archived records hold no unique value.
                    rec = {"id": rid, "properties": {k: ObjectStore._stored(k, v)
                                                     for k, v in props.items() if v != ""},
                           "createdAt": now, "updatedAt": now, "archived": True,
                           "archivedAt": now, "writes": 0}
                    store.records[rid] = rec
                else:
                    rec = store.create(rid, props, now, via_api=False)
                created.append({"id": rid, "properties": rec["properties"],
                                "archived": rec["archived"]})
        except HttpError:
            undo.rollback(self)
            raise
        return {"records": created}

    # -- rate limits -----------------------------------------------------------------------

    def admit(self):
        """Count an API request against the limits (lock held).

        Returns (policy or None, headers): policy names the limit that refused it.
        """
        now = time.monotonic()
        limit = self.rate_limit
        if limit is not None:
            horizon = now - limit["interval_ms"] / 1000.0
            while self.window and self.window[0] <= horizon:
                self.window.popleft()
        policy = None
        if self.daily_limit is not None and self.daily_used >= self.daily_limit:
            policy = "DAILY"
        elif limit is not None and len(self.window) >= limit["max"]:
            policy = "TEN_SECONDLY_ROLLING"
        else:
            if limit is not None:
                self.window.append(now)
            self.daily_used += 1
        headers = {}
        if limit is not None:
            interval_ms = limit["interval_ms"]
            headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(
                int(interval_ms) if float(interval_ms).is_integer() else interval_ms)
            headers["X-HubSpot-RateLimit-Max"] = str(limit["max"])
            remaining = 0 if policy == "TEN_SECONDLY_ROLLING" else limit["max"] - len(self.window)
            headers["X-HubSpot-RateLimit-Remaining"] = str(max(remaining, 0))
        if self.daily_limit is not None:
            headers["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                max(self.daily_limit - self.daily_used, 0))
        if policy is not None:
            self.stats["rate_limited"] += 1
        return policy, headers

    # -- faults ------------------------------------------------------------------------------

    def next_fault(self):
        """The fault for this request (lock held): a queue entry or a random draw."""
        if self.faults:
            return {"kind": "queue", **self.faults.popleft()}
        total = self.reset_rate + self.timeout_rate + self.fail_rate
        if total <= 0:
            return None
        r = self.rng.random()
        if r < self.reset_rate:
            return {"kind": "reset_rate", "reset": True}
        r -= self.reset_rate
        if r < self.timeout_rate:
            return {"kind": "timeout_rate", "timeout": True}
        r -= self.timeout_rate
        if r < self.fail_rate:
            return {"kind": "fail_rate", "status": self.rng.choice(RANDOM_FAULT_STATUSES)}
        return None

    # -- the API ---------------------------------------------------------------------------

    def new_id(self):
        rid = str(self.next_id)
        self.next_id += 1
        return rid

    def route(self, method, path, body, raw_text, requested_at):
        """Answer an admitted API request (lock held): (status, payload or None)."""
        props = PROPERTIES_PATH.match(urlsplit(path).path)
        if props is not None:
            return self._properties(method, props.group(1), body, raw_text)
        match = BATCH_PATH.match(urlsplit(path).path)
        if match is None:
            raise ApiError(404, f"No resource found at {urlsplit(path).path}", "OBJECT_NOT_FOUND")
        object_type, action = match.groups()
        name = OBJECT_ALIASES.get(object_type)
        if name is None:
            raise ApiError(404, f"Unable to infer object type from: {object_type}",
                           "OBJECT_NOT_FOUND")
        if action not in ACTIONS:
            raise ApiError(404, f"No resource found at {urlsplit(path).path}", "OBJECT_NOT_FOUND")
        if method != "POST":
            raise ApiError(405, f"HTTP method {method} is not supported by this URL",
                           "VALIDATION_ERROR", headers={"Allow": "POST"})
        if raw_text is not None:
            raise bad_input(f"Invalid input JSON on line 1, column 1: {raw_text[:60]!r} "
                            f"is not valid JSON")
        store = self.stores[name]
        handler = getattr(self, f"_batch_{action}")
        return handler(store, body, requested_at)

    def _properties(self, method, object_type, body, raw_text):
        name = OBJECT_ALIASES.get(object_type)
        if name is None:
            raise ApiError(404, f"Unable to infer object type from: {object_type}",
                           "OBJECT_NOT_FOUND")
        if method != "GET":
            raise ApiError(405, f"HTTP method {method} is not supported by this URL",
                           "VALIDATION_ERROR", headers={"Allow": "GET"})
        created = "2019-10-30T03:30:17.883Z"
        results = [api_property(p, True, created) for p in STANDARD_PROPERTIES[name]]
        results += [api_property(p, False, created) for p in self.custom_properties[name]]
        return 200, {"results": results}

    @staticmethod
    def properties_contract(method, path, body, raw_text):
        """The properties API is not in the CRM objects contract: its request is
        checked here (GET, no body, known query parameters only)."""
        errors = []
        parts = urlsplit(path)
        if PROPERTIES_PATH.match(parts.path) is None:
            return None
        if method == "GET" and (body is not None or raw_text):
            errors.append(f"GET {parts.path}: a GET carries no body")
        for key in parse_qs(parts.query, keep_blank_values=True):
            if key not in PROPERTIES_QUERY:
                errors.append(f"GET {parts.path}: unknown query parameter {key!r}")
        return errors

    def _invalid_items(self, store, props):
        """Items of HubSpot's 'Property values were not valid' list for these values."""
        items = []
        for rule, pattern in self.invalid_rules:
            if rule.get("object", store.name) != store.name:
                continue
            value = props.get(rule["property"])
            if value is not None and pattern.search(value):
                items.append({
                    "isValid": False,
                    "message": rule.get("message",
                                        f"{value} was not a valid value for property "
                                        f"\"{rule['property']}\""),
                    "error": rule.get("error", "INVALID_PROPERTY_VALUE"),
                    "name": rule["property"],
                })
        return items

    @staticmethod
    def _validation_failure(items, trace, ref):
        message = "Property values were not valid: " + json.dumps(items, separators=(",", ":"))
        return Failure("VALIDATION_ERROR", message, trace, ref, items)

    @staticmethod
    def _conflict_failure(store, owner, trace, ref):
        return Failure("CONFLICT", f"{store.meta['label']} already exists. Existing ID: {owner}",
                       trace, ref, existingId=[owner])

    def _finish(self, store, undo, results, failures, all_traced, requested_at, started_at,
                ok_status=200):
        """Turn per-input outcomes into the response (lock held)."""
        if failures and self.partial_requires_trace_id and not all_traced:
            hard = [f for f in failures if f.category in ("VALIDATION_ERROR", "CONFLICT")]
            if hard:
                # Documented HubSpot rule (ref): without objectWriteTraceId on every input,
                # one bad record fails the whole request and nothing is written.
                undo.rollback(self)
                invalid = [f for f in hard if f.category == "VALIDATION_ERROR"]
                if invalid:
                    items = [item for f in invalid for item in f.items]
                    errors = [{"message": item["message"], "code": item["error"],
                               "context": {"propertyName": [item["name"]]}} for item in items]
                    raise ApiError(400, "Property values were not valid: "
                                   + json.dumps(items, separators=(",", ":")),
                                   "VALIDATION_ERROR", errors=errors)
                raise ApiError(409, hard[0].message, "CONFLICT")
        if self.shuffle_results:
            self.shuffle_rng.shuffle(results)
        errors = []
        not_found = None
        for failure in failures:
            if failure.category == "OBJECT_NOT_FOUND":
                # HubSpot groups missing ids into one error (ref: 207 example).
                if not_found is None:
                    not_found = {"status": "error", "category": "OBJECT_NOT_FOUND",
                                 "message": failure.message, "context": {"ids": []}}
                    errors.append(not_found)
                not_found["context"]["ids"].append(failure.ref)
                continue
            if failure.trace is not None:
                context = {"objectWriteTraceId": [failure.trace]}
            elif failure.ref is not None:
                context = {"ids": [failure.ref]}
            else:
                context = {}
            context.update(failure.context)
            errors.append({"status": "error", "category": failure.category,
                           "message": failure.message, "context": context})
        payload = {"status": "COMPLETE", "results": results, "numErrors": len(errors),
                   "errors": errors, "requestedAt": requested_at, "startedAt": started_at,
                   "completedAt": iso_now()}
        return (207 if errors else ok_status), payload

    def _batch_upsert(self, store, body, requested_at):
        inputs = batch_inputs(body)
        parsed = []
        for i, inp in enumerate(inputs):
            where = f"inputs[{i}]"
            id_prop = inp.get("idProperty")
            if not isinstance(id_prop, str) or not id_prop:
                raise bad_input(f"Invalid input JSON: {where}.idProperty is required for upsert")
            if id_prop not in store.unique:
                raise bad_input(f"Unable to perform update/upsert by non-unique "
                                f"{store.meta['type_id']} property {id_prop}")
            parsed.append((id_prop, input_id(inp, where), input_properties(inp, where),
                           input_trace(inp, where)))
        check_duplicates([(p, normalize(p, v)) for p, v, _, _ in parsed])

        started_at = iso_now()
        undo = Undo(self, store)
        results, failures = [], []
        for id_prop, id_value, props, trace in parsed:
            props = dict(props)
            props[id_prop] = id_value  # the id is written to its property (choice: it wins)
            ref = normalize(id_prop, id_value)
            items = self._invalid_items(store, props)
            if items:
                failures.append(self._validation_failure(items, trace, ref))
                continue
            rec = store.find(id_prop, id_value)
            owner = store.conflict(props, rec["id"] if rec else None)
            if owner is not None:
                failures.append(self._conflict_failure(store, owner, trace, ref))
                continue
            now = iso_now()
            if rec is not None:
                undo.touch(rec["id"])
                store.update(rec, props, now)
                is_new = False
            else:
                rid = self.new_id()
                undo.touch(rid)
                rec = store.create(rid, props, now)
                is_new = True
            result = store.api_record(rec)
            result = {"id": result.pop("id"), "new": is_new, **result}
            results.append(result)
        all_traced = all(trace is not None for _, _, _, trace in parsed)
        return self._finish(store, undo, results, failures, all_traced, requested_at, started_at)

    def _lookup(self, store, id_prop, id_value):
        if id_prop is None:
            return store.active(id_value)
        return store.find(id_prop, id_value)

    def _target(self, store, inp, where, id_prop=None):
        """(idProperty or None, id) of an update/read input; checks the idProperty."""
        if "idProperty" in inp:
            id_prop = inp["idProperty"]
        if id_prop is not None:
            if not isinstance(id_prop, str) or not id_prop:
                raise bad_input(f"Invalid input JSON: {where}.idProperty must be a string")
            if id_prop not in store.unique:
                raise bad_input(f"Unable to perform update/upsert by non-unique "
                                f"{store.meta['type_id']} property {id_prop}")
        return id_prop, input_id(inp, where)

    def _not_found(self, store, ref):
        return Failure("OBJECT_NOT_FOUND",
                       f"Could not get some {store.meta['upper']} objects, they may be deleted "
                       f"or not exist. Check that ids are valid.", ref=ref)

    def _batch_update(self, store, body, requested_at):
        inputs = batch_inputs(body)
        parsed = []
        for i, inp in enumerate(inputs):
            where = f"inputs[{i}]"
            id_prop, id_value = self._target(store, inp, where)
            parsed.append((id_prop, id_value, input_properties(inp, where),
                           input_trace(inp, where)))
        check_duplicates([(p or "hs_object_id", normalize(p, v) if p else v)
                          for p, v, _, _ in parsed])

        started_at = iso_now()
        undo = Undo(self, store)
        results, failures = [], []
        for id_prop, id_value, props, trace in parsed:
            ref = normalize(id_prop, id_value) if id_prop else id_value
            rec = self._lookup(store, id_prop, id_value)
            if rec is None:
                failures.append(self._not_found(store, ref))
                continue
            checked = dict(props)
            if id_prop is not None:
                checked.setdefault(id_prop, id_value)
            items = self._invalid_items(store, checked)
            if items:
                failures.append(self._validation_failure(items, trace, ref))
                continue
            owner = store.conflict(props, rec["id"])
            if owner is not None:
                failures.append(self._conflict_failure(store, owner, trace, ref))
                continue
            undo.touch(rec["id"])
            store.update(rec, props, iso_now())
            results.append(store.api_record(rec))
        all_traced = all(trace is not None for _, _, _, trace in parsed)
        return self._finish(store, undo, results, failures, all_traced, requested_at, started_at)

    def _batch_create(self, store, body, requested_at):
        inputs = batch_inputs(body)
        parsed = [(input_properties(inp, f"inputs[{i}]"), input_trace(inp, f"inputs[{i}]"))
                  for i, inp in enumerate(inputs)]
        started_at = iso_now()
        undo = Undo(self, store)
        results, failures = [], []
        for props, trace in parsed:
            ref = next((normalize(p, props[p]) for p in store.unique if props.get(p)), None)
            items = self._invalid_items(store, props)
            if items:
                failures.append(self._validation_failure(items, trace, ref))
                continue
            owner = store.conflict(props, None)
            if owner is not None:
                failures.append(self._conflict_failure(store, owner, trace, ref))
                continue
            rid = self.new_id()
            undo.touch(rid)
            results.append(store.api_record(store.create(rid, props, iso_now())))
        all_traced = all(trace is not None for _, trace in parsed)
        return self._finish(store, undo, results, failures, all_traced, requested_at,
                            started_at, ok_status=201)

    def _batch_archive(self, store, body, requested_at):
        inputs = batch_inputs(body)
        ids = [input_id(inp, f"inputs[{i}]") for i, inp in enumerate(inputs)]
        now = iso_now()
        for rid in ids:
            rec = store.active(rid)
            if rec is not None:
                store.archive(rec, now)
        return 204, None  # always (ref), whatever the records' state

    def _batch_read(self, store, body, requested_at):
        inputs = batch_inputs(body)
        id_prop = body.get("idProperty")
        only = body.get("properties")
        if only is not None and (not isinstance(only, list)
                                 or not all(isinstance(p, str) for p in only)):
            raise bad_input("Invalid input JSON: 'properties' must be a list of names")
        parsed = []
        for i, inp in enumerate(inputs):
            parsed.append(self._target(store, inp, f"inputs[{i}]", id_prop))
        check_duplicates([(p or "hs_object_id", normalize(p, v) if p else v) for p, v in parsed])
        started_at = iso_now()
        results, failures = [], []
        for prop, value in parsed:
            rec = self._lookup(store, prop, value)
            if rec is None:
                failures.append(self._not_found(store, normalize(prop, value) if prop else value))
            else:
                results.append(store.api_record(rec, only))
        return self._finish(store, Undo(self, store), results, failures, True, requested_at,
                            started_at)


# -- HTTP ---------------------------------------------------------------------------------------

class MockServer(SharedMockServer):
    def __init__(self, address, state):
        self.state = state
        self.contract = None  # --openapi: the contract request bodies are checked against
        self.stopping = threading.Event()  # wakes every sleeping request on shutdown
        super().__init__(address, MockHandler)


class MockHandler(StrictBodyReader, BaseHTTPRequestHandler):
    max_body = MAX_BODY
    protocol_version = "HTTP/1.1"
    server_version = "revetl-mock-hubspot/1"
    timeout = 120  # free the thread of a client that stalls mid-request
    # Headers and body go out in two writes; with Nagle on, the client's delayed
    # ACK adds ~40 ms to every response. TCP_NODELAY avoids that.
    disable_nagle_algorithm = True

    # -- plumbing ---------------------------------------------------------------

    def log_message(self, format, *args):  # noqa: A002 (signature from base class)
        pass  # quiet: no per-request stderr lines

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _is_control(self):
        path = urlsplit(self.path).path
        return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")

    def _lower_headers(self):
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return headers

    def _send(self, status, payload, headers=None, content_type="application/json"):
        """Send a response. `payload` is None (no body), a str (text) or JSON-able."""
        if payload is None:
            body, out = b"", {}
        elif isinstance(payload, str):
            body = payload.encode("utf-8")
            out = {"Content-Type": "text/plain; charset=utf-8"}
        else:
            body = json.dumps(payload).encode("utf-8")
            out = {"Content-Type": content_type}
        if status in (204, 304):
            body, out = b"", {}  # these statuses must not carry a body
        for name, value in (headers or {}).items():
            # Framing headers are ours to set; a fault may override the rest.
            if name.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            out = {k: v for k, v in out.items() if k.lower() != name.lower()}
            out[name] = str(value)
        out["Content-Length"] = str(len(body))
        if self.close_connection:
            out["Connection"] = "close"
        self.send_response(status)
        for name, value in out.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_api(self, status, payload, headers=None):
        self._send(status, payload, headers, content_type=API_CONTENT_TYPE)

    def _reset_connection(self):
        """Close the connection with a TCP RST and no answer."""
        self.close_connection = True
        try:
            # Linger 0: close() sends RST instead of FIN. The fd really closes when
            # finish() closes rfile; shutdown_request() then ignores the EBADF.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.connection.close()

    def _sleep(self, ms):
        """Sleep `ms` milliseconds; False if the server started stopping meanwhile."""
        if ms <= 0:
            return not self.server.stopping.is_set()
        return not self.server.stopping.wait(ms / 1000.0)

    def _refuse_unread(self, err, arrived):
        """Answer a request whose body we will not read; the connection must close."""
        self.close_connection = True
        if self._is_control():
            self._send(err.status, err.payload())
            return
        with self.server.state.lock:
            self.server.state.add_journal(self._journal_entry(arrived, None, None, err.status))
        self._send_api(err.status, hubspot_error(err.message, "VALIDATION_ERROR"))

    def handle_expect_100(self):
        # Refuse oversized bodies before the client sends them (curl sends
        # `Expect: 100-continue` for large POSTs).
        try:
            self._declared_length()
        except HttpError as err:
            self._refuse_unread(err, time.time())
            return False
        return super().handle_expect_100()

    def _dispatch(self):
        arrived = time.time()
        try:
            raw = self._read_body()
        except HttpError as err:
            self._refuse_unread(err, arrived)
            return
        except ClientGone:
            self.close_connection = True
            return
        try:
            if self._is_control():
                self._handle_control(raw)
            else:
                self._handle_api(raw, arrived)
        except (ConnectionError, TimeoutError):
            raise
        except Exception as exc:  # a bug in the mock: say so loudly, keep serving
            traceback.print_exc()
            self.close_connection = True
            self._send(500, {"error": f"mock internal error: {exc!r}", "code": "MOCK_BUG"})

    # -- HubSpot API --------------------------------------------------------------------------

    def _journal_entry(self, arrived, body, raw_text, status, fault=None):
        entry = {
            "method": self.command,
            "path": self.path,
            "headers": self._lower_headers(),
            "body": body,
            "status": status,
            "time": arrived,
        }
        if raw_text is not None:
            entry["raw"] = raw_text
        if fault is not None:
            entry["fault"] = fault
        return entry

    def _authorized(self, token):
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and value.strip() == token

    def _handle_api(self, raw, arrived):
        state = self.server.state
        body, raw_text = None, None  # an empty body is journaled as null
        if raw:
            text = raw.decode("utf-8", errors="replace")
            try:
                body = json.loads(text)
            except ValueError:
                raw_text = text

        def drop():
            # The server is stopping: give up on this request without answering.
            self.close_connection = True

        with state.lock:
            delay_ms = state.delay_ms
        if delay_ms and not self._sleep(delay_ms):  # simulated slow API (lock not held)
            return drop()

        with state.lock:
            authorized = self._authorized(state.token)
            fault = None
            if not authorized:
                state.add_journal(self._journal_entry(arrived, body, raw_text, 401))
            else:
                fault = state.next_fault()
                if fault is not None and fault.get("timeout"):
                    state.stats["timeouts"] += 1
            timeout_delay_ms = state.timeout_delay_ms
        if not authorized:
            self._send_api(401, hubspot_error(AUTH_MESSAGE, "INVALID_AUTHENTICATION"))
            return

        tag = None
        if fault is not None:
            tag = fault["kind"]
            if fault.get("timeout"):
                if not self._sleep(fault.get("delay_ms", timeout_delay_ms)):
                    return drop()
                # then answer normally: the write is applied even if the client gave up
            else:
                if not self._sleep(fault.get("delay_ms", 0)):
                    return drop()
                if fault.get("reset"):
                    with state.lock:
                        state.add_journal(self._journal_entry(arrived, body, raw_text, None, tag))
                    self._reset_connection()
                    return
                status = fault["status"]
                payload = fault["body"] if "body" in fault else default_fault_body(status)
                with state.lock:
                    state.add_journal(self._journal_entry(arrived, body, raw_text, status, tag))
                self._send_api(status, payload, fault.get("headers", {}))
                return

        # Decide, apply and journal under one lock so journal order == apply order,
        # and journal before answering so a client that got a response always
        # finds its request in GET /_mock/requests.
        with state.lock:
            policy, headers = state.admit()
            contract_errors = []
            own = MockState.properties_contract(self.command, self.path, body, raw_text)
            if policy is None and own is not None:
                contract_errors = own
            elif policy is None and self.server.contract is not None and raw_text is None:
                contract_errors = self.server.contract.validate_request(self.command, self.path, body)
            if policy is not None:
                status, payload = 429, rate_limit_body(policy)
            elif contract_errors:
                state.stats["contract_violations"] += 1
                status, payload = 400, hubspot_error("Invalid input JSON: " + "; ".join(contract_errors)[:2000],
                                                     "VALIDATION_ERROR")
            else:
                try:
                    status, payload = state.route(self.command, self.path, body, raw_text,
                                                  iso_time(arrived))
                except ApiError as err:
                    status, payload = err.status, err.payload()
                    headers.update(err.headers)
            entry = self._journal_entry(arrived, body, raw_text, status, tag)
            if contract_errors:
                entry["contract_errors"] = contract_errors
            state.add_journal(entry)
        self._send_api(status, payload, headers)

    # -- control API ----------------------------------------------------------------

    def _handle_control(self, raw):
        state = self.server.state
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/")
        query = parse_qs(parts.query)

        def json_body():
            if not raw.strip():
                return {}
            try:
                return json.loads(raw.decode("utf-8"))
            except ValueError:
                raise HttpError(400, "body is not valid JSON", "INVALID_JSON") from None

        def health():
            return {"ok": True}

        def get_requests():
            return {"requests": state.journal}

        def clear_requests():
            state.journal.clear()
            return {"ok": True}

        def get_records():
            only = query.get("object", [None])[-1]
            if only is not None and only not in OBJECTS:
                raise HttpError(400, f"object must be one of {sorted(OBJECTS)}", "INVALID_OBJECT")
            return state.records_snapshot(only)

        def post_records():
            return state.seed_records(body)

        def clear_records():
            state.clear_store()
            return {"ok": True}

        def get_stats():
            return state.stats_snapshot()

        def get_config():
            return state.config()

        def post_config():
            return state.update_config(body)

        def reset():
            state.reset()
            return {"ok": True}

        routes = {
            "/_mock/health": {"GET": health},
            "/_mock/requests": {"GET": get_requests, "DELETE": clear_requests},
            "/_mock/records": {"GET": get_records, "POST": post_records,
                               "DELETE": clear_records},
            "/_mock/stats": {"GET": get_stats},
            "/_mock/config": {"GET": get_config, "POST": post_config},
            "/_mock/reset": {"POST": reset},
        }
        methods = routes.get(path)
        if methods is None:
            self._send(404, {"error": f"unknown control path {path}", "code": "NOT_FOUND"})
            return
        handler = methods.get(self.command)
        if handler is None:
            self._send(405, {"error": "method not allowed", "code": "METHOD_NOT_ALLOWED"},
                       {"Allow": ", ".join(sorted(methods))})
            return
        try:
            body = json_body() if self.command == "POST" else None
            with state.lock:
                # Serialize under the lock so the answer is a consistent snapshot.
                out = json.dumps(handler())
        except HttpError as err:
            self._send(err.status, err.payload())
            return
        self._send(200, json.loads(out))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Mock HubSpot CRM v3 batch API for revetl tests.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = pick a free one)")
    parser.add_argument("--port-file", help="write the actual port here once listening")
    parser.add_argument("--token", default=DEFAULT_TOKEN,
                        help="bearer token the API requires (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the fault and shuffle generators (default %(default)s)")
    parser.add_argument("--journal-file", help="append each journaled request as a JSON line")
    parser.add_argument("--openapi", help="validate request bodies against this OpenAPI contract")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("--token must not be empty")

    if args.port_file:
        remove_quietly(args.port_file)  # never let a reader see a stale port
    journal_fh = open(args.journal_file, "a", encoding="utf-8") if args.journal_file else None
    state = MockState(token=args.token, seed=args.seed, journal_file=journal_fh)
    contract = None
    if args.openapi:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
        from openapi import hubspot_contract
        contract = hubspot_contract(args.openapi)
    try:
        server = MockServer((HOST, args.port), state)
    except OSError as exc:
        print(f"mock_hubspot: cannot listen on {HOST}:{args.port}: {exc}", file=sys.stderr)
        return 1
    server.contract = contract

    def close_journal():
        with state.lock:  # handler threads may still be journaling
            if journal_fh is not None:
                journal_fh.close()
                state.journal_file = None

    # A signal ends delays and simulated timeouts early.
    return serve(server, "mock_hubspot", args.port_file, before_shutdown=server.stopping.set,
                 after_shutdown=close_journal)


if __name__ == "__main__":
    sys.exit(main())

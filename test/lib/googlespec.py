"""revetl's own description of the request contract of Google Customer Match, and a
validator of JSON request bodies against it. Maintained by hand: no file of Google's is
kept, compiled or loaded here (house rule: public material is read, never committed).

Where each rule comes from (sections of ../shared/vendor-specs/google/SOURCE.md, which names
the googleapis commit the protos were read at; where SOURCE.md abbreviates a message, its
field list was completed by reading those protos, and written down here in revetl's words):

  * JSON shape, for every message below -- SOURCE.md, opening section ("REST JSON uses the
    standard proto3 JSON mapping"): field names in lowerCamelCase (revetl never sends the
    snake_case spelling, so it is refused), enums as the strings listed (the zero value
    *_UNSPECIFIED and UNKNOWN mean "not set" and are never valid in a request), repeated fields
    as arrays, messages as objects, bool as true/false, int64 as a decimal string or an
    integer, null as "absent". A field not in the table is an error.
  * Data Manager messages, required fields (*), oneofs, routes -- SOURCE.md "Data Manager API"
    (IngestAudienceMembersRequest, RemoveAudienceMembersRequest, Destination, ProductAccount,
    AudienceMember, Consent, UserData, UserIdentifier, AddressInfo, TermsOfService, ...).
  * Google Ads messages, required fields, oneofs, routes -- SOURCE.md "Google Ads API v25"
    (CreateOfflineUserDataJobRequest, OfflineUserDataJob, CustomerMatchUserListMetadata,
    Consent, AddOfflineUserDataJobOperationsRequest, OfflineUserDataJobOperation, UserData,
    UserIdentifier, OfflineUserAddressInfo, RunOfflineUserDataJobRequest).
  * Limits and value rules -- SOURCE.md "Constraints worth checking" (with the figures of the
    two API sections): at most 10,000 audience members per Data Manager call and 1 to 10
    identifiers per member (10 mobile ids); 1 to 20 identifiers per Google Ads UserData and at
    most 100,000 per addOperations request; email / phone / names SHA-256 of normalised text,
    lower-case hex when encoding is HEX (Base64 of 32 bytes when BASE64), region / country code
    two capital letters and postal code plain; encoding present with userData; Customer Match
    terms of service ACCEPTED when ingesting userData or mobileData; destination ids and
    account types present; AddressInfo's addressLine / city / administrativeArea only for a
    Google Analytics destination.
  * revetl's own choices, stricter than Google's contract, marked "revetl:" below: a job is
    always CUSTOMER_MATCH_USER_LIST with userList "customers/{cid}/userLists/{id}"; create and
    remove operations never share one request (the mock refuses the mix too); the ingest cap
    is also applied to removals (SOURCE.md states none; revetl sends the same batch size).

Messages revetl never sends (Ads TransactionAttribute / UserAttribute / StoreSalesMetadata,
Data Manager EncryptionInfo's key infos, PairData, CompositeData ...) are named but not
described: a body carrying one is reported as outside this description, so whoever adds such
a feature has to describe it here first.

Interface used by test/connectors/google/mock.py: GoogleSpec().validate(method, path, body_text)
-> list of error strings ([] when the body conforms). Python 3 standard library only."""

import base64
import binascii
import json
import re

MAX_ERRORS = 50
HEX64 = re.compile(r"^[0-9a-f]{64}$")
REGION = re.compile(r"^[A-Z]{2}$")
INT64 = re.compile(r"^-?[0-9]{1,19}$")
USER_LIST = re.compile(r"^customers/[0-9]+/userLists/[0-9]+$")


class Field:
    """One field of a message in the proto3 JSON mapping. kind is "string", "bool", "int32",
    "int64", Enum(...), a message name of MESSAGES, or UNDESCRIBED."""

    def __init__(self, kind, repeated=False, required=False, oneof=None, path=None):
        self.kind, self.repeated, self.required, self.oneof = kind, repeated, required, oneof
        # The name of the URL path parameter that binds this field (gRPC transcoding): a
        # required path-bound field is satisfied by the URL and, if repeated in the body,
        # must agree with it.
        self.path = path


class Enum:
    def __init__(self, *values):
        self.values = frozenset(values)


UNDESCRIBED = "undescribed"


def f(kind, **kw):
    return Field(kind, **kw)


# ---- Data Manager API v1 (SOURCE.md "Data Manager API") -------------------------------
CONSENT_STATUS = Enum("CONSENT_GRANTED", "CONSENT_DENIED")
DM_ACCOUNT_TYPE = Enum("GOOGLE_ADS", "DISPLAY_VIDEO_PARTNER", "DISPLAY_VIDEO_ADVERTISER", "DATA_PARTNER",
                       "GOOGLE_ANALYTICS_PROPERTY", "GOOGLE_AD_MANAGER_AUDIENCE_LINK", "FLOODLIGHT_CONFIG")
ENCODING = Enum("HEX", "BASE64")
TOS_STATUS = Enum("ACCEPTED", "REJECTED")

# ---- Google Ads API v25 (SOURCE.md "Google Ads API v25") ------------------------------
ADS_CONSENT_STATUS = Enum("GRANTED", "DENIED")
JOB_TYPE = Enum("STORE_SALES_UPLOAD_FIRST_PARTY", "STORE_SALES_UPLOAD_THIRD_PARTY",
                "CUSTOMER_MATCH_USER_LIST", "CUSTOMER_MATCH_WITH_ATTRIBUTES")
ID_SOURCE = Enum("FIRST_PARTY", "THIRD_PARTY")

MESSAGES = {
    # Data Manager
    "dm.IngestAudienceMembersRequest": {
        "destinations": f("dm.Destination", repeated=True, required=True),
        "audienceMembers": f("dm.AudienceMember", repeated=True, required=True),
        "consent": f("dm.Consent"),
        "validateOnly": f("bool"),
        "encoding": f(ENCODING),
        "encryptionInfo": f(UNDESCRIBED),
        "termsOfService": f("dm.TermsOfService"),
    },
    "dm.RemoveAudienceMembersRequest": {
        "destinations": f("dm.Destination", repeated=True, required=True),
        "audienceMembers": f("dm.AudienceMember", repeated=True, required=True),
        "validateOnly": f("bool"),
        "encoding": f(ENCODING),
        "encryptionInfo": f(UNDESCRIBED),
    },
    "dm.Destination": {
        "reference": f("string"),
        "loginAccount": f("dm.ProductAccount"),
        "linkedAccount": f("dm.ProductAccount"),
        "operatingAccount": f("dm.ProductAccount", required=True),
        "productDestinationId": f("string", required=True),
    },
    "dm.ProductAccount": {
        "accountId": f("string", required=True),
        "accountType": f(DM_ACCOUNT_TYPE, required=True),
    },
    "dm.AudienceMember": {
        "destinationReferences": f("string", repeated=True),
        "consent": f("dm.Consent"),
        "userData": f("dm.UserData", oneof="data"),
        "pairData": f(UNDESCRIBED, oneof="data"),
        "mobileData": f("dm.MobileData", oneof="data"),
        "userIdData": f("dm.UserIdData", oneof="data"),
        "ppidData": f(UNDESCRIBED, oneof="data"),
        "compositeData": f(UNDESCRIBED, oneof="data"),
        "googleUserIdData": f(UNDESCRIBED, oneof="data"),
        "partnerProvidedIdData": f(UNDESCRIBED, oneof="data"),
    },
    "dm.Consent": {
        "adUserData": f(CONSENT_STATUS),
        "adPersonalization": f(CONSENT_STATUS),
    },
    "dm.UserData": {
        "userIdentifiers": f("dm.UserIdentifier", repeated=True, required=True),
    },
    "dm.UserIdentifier": {
        "emailAddress": f("string", oneof="identifier"),
        "phoneNumber": f("string", oneof="identifier"),
        "address": f("dm.AddressInfo", oneof="identifier"),
    },
    "dm.AddressInfo": {
        "givenName": f("string", required=True),
        "familyName": f("string", required=True),
        "regionCode": f("string", required=True),
        "postalCode": f("string", required=True),
        "addressLine": f("string"),
        "city": f("string"),
        "administrativeArea": f("string"),
    },
    "dm.MobileData": {
        "mobileIds": f("string", repeated=True, required=True),
    },
    "dm.UserIdData": {
        "userId": f("string", required=True),
    },
    "dm.TermsOfService": {
        "customerMatchTermsOfServiceStatus": f(TOS_STATUS),
    },
    # Google Ads
    "ads.CreateOfflineUserDataJobRequest": {
        "customerId": f("string", required=True, path="customer_id"),
        "job": f("ads.OfflineUserDataJob", required=True),
        "validateOnly": f("bool"),
        "enableMatchRateRangePreview": f("bool"),
    },
    "ads.OfflineUserDataJob": {
        # resource_name, id, status, failure_reason, operation_metadata are set by Google
        # (immutable / output only): a create request has no business sending them.
        "externalId": f("int64"),
        "type": f(JOB_TYPE, required=True),
        "customerMatchUserListMetadata": f("ads.CustomerMatchUserListMetadata", oneof="metadata"),
        "storeSalesMetadata": f(UNDESCRIBED, oneof="metadata"),
    },
    "ads.CustomerMatchUserListMetadata": {
        "userList": f("string"),
        "consent": f("ads.Consent"),
    },
    "ads.Consent": {
        "adUserData": f(ADS_CONSENT_STATUS),
        "adPersonalization": f(ADS_CONSENT_STATUS),
    },
    "ads.AddOfflineUserDataJobOperationsRequest": {
        "resourceName": f("string", required=True, path="resource_name"),
        "enablePartialFailure": f("bool"),
        "enableWarnings": f("bool"),
        "operations": f("ads.OfflineUserDataJobOperation", repeated=True, required=True),
        "validateOnly": f("bool"),
    },
    "ads.OfflineUserDataJobOperation": {
        "create": f("ads.UserData", oneof="operation"),
        "remove": f("ads.UserData", oneof="operation"),
        "removeAll": f("bool", oneof="operation"),
    },
    "ads.UserData": {
        "userIdentifiers": f("ads.UserIdentifier", repeated=True),
        "transactionAttribute": f(UNDESCRIBED),
        "userAttribute": f(UNDESCRIBED),
        "consent": f("ads.Consent"),
    },
    "ads.UserIdentifier": {
        "userIdentifierSource": f(ID_SOURCE),
        "hashedEmail": f("string", oneof="identifier"),
        "hashedPhoneNumber": f("string", oneof="identifier"),
        "mobileId": f("string", oneof="identifier"),
        "thirdPartyUserId": f("string", oneof="identifier"),
        "addressInfo": f("ads.OfflineUserAddressInfo", oneof="identifier"),
    },
    "ads.OfflineUserAddressInfo": {
        "hashedFirstName": f("string"),
        "hashedLastName": f("string"),
        "city": f("string"),
        "state": f("string"),
        "countryCode": f("string"),
        "postalCode": f("string"),
        "hashedStreetAddress": f("string"),
    },
    "ads.RunOfflineUserDataJobRequest": {
        "resourceName": f("string", required=True, path="resource_name"),
        "validateOnly": f("bool"),
    },
}

# REST method and URL -> request message (the HTTP rules SOURCE.md lists per API); the named
# groups are the path parameters bound to request fields.
ROUTES = [
    ("POST", re.compile(r"^/v1/audienceMembers:ingest$"), "dm.IngestAudienceMembersRequest"),
    ("POST", re.compile(r"^/v1/audienceMembers:remove$"), "dm.RemoveAudienceMembersRequest"),
    ("POST", re.compile(r"^/v25/customers/(?P<customer_id>[0-9]+)/offlineUserDataJobs:create$"),
     "ads.CreateOfflineUserDataJobRequest"),
    ("POST", re.compile(r"^/v25/(?P<resource_name>customers/[0-9]+/offlineUserDataJobs/[0-9]+):addOperations$"),
     "ads.AddOfflineUserDataJobOperationsRequest"),
    ("POST", re.compile(r"^/v25/(?P<resource_name>customers/[0-9]+/offlineUserDataJobs/[0-9]+):run$"),
     "ads.RunOfflineUserDataJobRequest"),
]

DM_MAX_MEMBERS = 10000        # SOURCE.md "Data Manager API": audience_members at most 10,000
DM_MAX_IDENTIFIERS = 10       # ... UserData.user_identifiers at most 10 per audience member
DM_MAX_MOBILE_IDS = 10        # ... mobile_ids at most 10
ADS_MAX_IDENTIFIERS = 20      # SOURCE.md "Google Ads API v25": at most 20 identifiers per UserData
ADS_MAX_REQUEST_IDS = 100000  # ... at most 100,000 identifiers per addOperations request


def json_type(value):
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value)) or (
        "number" if isinstance(value, (int, float)) else "null")


class GoogleSpec:
    def __init__(self, *_ignored):
        # Accepts (and ignores) the folder argument older callers passed: nothing is loaded.
        pass

    def route(self, method, path):
        for m, pattern, name in ROUTES:
            match = pattern.match(path)
            if m == method and match:
                return name, match.groupdict()
        return None, {}

    def validate(self, method, path, body_text):
        """Errors (strings) of one request body; [] when it conforms."""
        name, params = self.route(method, path)
        if name is None:
            return [f"{method} {path} is not a route of revetl's Google contract (test/lib/googlespec.py)"]
        try:
            body = json.loads(body_text or "{}")
        except ValueError as exc:
            return [f"body is not JSON: {exc}"]
        errors = []
        self.walk(name, body, name.split(".", 1)[1], errors, params)
        if name.startswith("dm."):
            self.check_dm(name, body, errors)
        elif name == "ads.CreateOfflineUserDataJobRequest":
            self.check_ads_create(body, errors)
        elif name == "ads.AddOfflineUserDataJobOperationsRequest":
            self.check_ads_operations(body, errors)
        return errors[:MAX_ERRORS]

    # ---- the proto3 JSON mapping: fields, types, enums, oneofs, required fields ----------
    def walk(self, message, value, where, errors, params=None):
        if len(errors) >= MAX_ERRORS:
            return
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a JSON object ({message.split('.', 1)[1]}), got {json_type(value)}")
            return
        fields = MESSAGES[message]
        oneofs = {}
        for key, item in value.items():
            field = fields.get(key)
            if field is None:
                errors.append(f"{where}.{key}: unknown field of {message.split('.', 1)[1]}")
                continue
            if item is None:  # proto3 JSON: null is the field's default, i.e. not set
                continue
            if field.oneof:
                oneofs.setdefault(field.oneof, []).append(key)
            if field.path and params is not None and item != params.get(field.path):
                errors.append(f"{where}.{key}: {item!r} disagrees with the URL ({params.get(field.path)!r})")
            if field.repeated:
                if not isinstance(item, list):
                    errors.append(f"{where}.{key}: expected a JSON array, got {json_type(item)}")
                    continue
                for n, element in enumerate(item):
                    self.value(field, element, f"{where}.{key}[{n}]", errors)
            else:
                self.value(field, item, f"{where}.{key}", errors)
        for group, keys in oneofs.items():
            if len(keys) > 1:
                errors.append(f"{where}: oneof {group} has {len(keys)} members set ({', '.join(keys)}), at most one")
        for key, field in fields.items():
            if not field.required or value.get(key) is not None:
                continue
            if field.path and params and params.get(field.path):
                continue
            errors.append(f"{where}.{key}: required field missing")
        for key, field in fields.items():
            if field.required and field.repeated and value.get(key) == []:
                errors.append(f"{where}.{key}: required field is empty")

    def value(self, field, item, where, errors):
        kind = field.kind
        if kind == UNDESCRIBED:
            errors.append(f"{where}: a field of Google's contract that revetl does not send and "
                          "test/lib/googlespec.py does not describe")
        elif isinstance(kind, Enum):
            if not isinstance(item, str):
                errors.append(f"{where}: expected an enum name (string), got {json_type(item)}")
            elif item not in kind.values:
                errors.append(f"{where}: {item[:40]!r} is not one of {', '.join(sorted(kind.values))}")
        elif kind == "string":
            if not isinstance(item, str):
                errors.append(f"{where}: expected a string, got {json_type(item)}")
        elif kind == "bool":
            if not isinstance(item, bool):
                errors.append(f"{where}: expected true or false, got {json_type(item)}")
        elif kind in ("int32", "int64"):
            ok = (isinstance(item, int) and not isinstance(item, bool)) or (
                isinstance(item, str) and INT64.match(item))
            if not ok:
                errors.append(f"{where}: expected an integer ({kind}), got {json_type(item)}")
        else:
            self.walk(kind, item, where, errors)

    # ---- what the contract states beyond the JSON shape (SOURCE.md "Constraints ...") ----
    @staticmethod
    def hashed(value, encoding):
        if not isinstance(value, str):
            return True  # the type error is already reported
        if encoding == "BASE64":
            try:
                return len(base64.b64decode(value, validate=True)) == 32
            except (binascii.Error, ValueError):
                return False
        return bool(HEX64.match(value))

    def check_dm(self, name, body, errors):
        if not isinstance(body, dict):
            return
        encoding = body.get("encoding")
        members = body.get("audienceMembers") if isinstance(body.get("audienceMembers"), list) else []
        dests = body.get("destinations") if isinstance(body.get("destinations"), list) else []
        if len(members) > DM_MAX_MEMBERS:
            errors.append(f"{len(members)} audienceMembers, more than 10,000")
        with_user_data = any(isinstance(m, dict) and m.get("userData") is not None for m in members)
        with_mobile = any(isinstance(m, dict) and m.get("mobileData") is not None for m in members)
        if with_user_data and encoding not in ("HEX", "BASE64"):
            errors.append("encoding is required with userData")
        if name == "dm.IngestAudienceMembersRequest" and (with_user_data or with_mobile):
            tos = (body.get("termsOfService") or {}).get("customerMatchTermsOfServiceStatus")
            if tos != "ACCEPTED":
                errors.append("Customer Match terms of service not accepted for userData / mobileData")
        analytics = any(isinstance(d, dict) and isinstance(d.get("operatingAccount"), dict)
                        and d["operatingAccount"].get("accountType") == "GOOGLE_ANALYTICS_PROPERTY" for d in dests)
        for n, m in enumerate(members):
            if len(errors) >= MAX_ERRORS or not isinstance(m, dict):
                break
            where = f"audienceMembers[{n}]"
            mobile = (m.get("mobileData") or {}).get("mobileIds") if isinstance(m.get("mobileData"), dict) else None
            if isinstance(mobile, list) and len(mobile) > DM_MAX_MOBILE_IDS:
                errors.append(f"{where}.mobileData has {len(mobile)} mobileIds, more than 10")
            data = m.get("userData")
            ids = data.get("userIdentifiers") if isinstance(data, dict) else None
            if not isinstance(ids, list):
                continue
            if len(ids) > DM_MAX_IDENTIFIERS:
                errors.append(f"{where} has {len(ids)} identifiers, more than 10")
            for k, ident in enumerate(ids):
                if not isinstance(ident, dict):
                    continue
                at = f"{where}.userData.userIdentifiers[{k}]"
                for key in ("emailAddress", "phoneNumber"):
                    if key in ident and not self.hashed(ident[key], encoding):
                        errors.append(f"{at}.{key} is not a SHA-256 digest in {encoding or 'HEX'}")
                a = ident.get("address")
                if not isinstance(a, dict):
                    continue
                for key in ("givenName", "familyName"):
                    if key in a and not self.hashed(a[key], encoding):
                        errors.append(f"{at}.address.{key} is not a SHA-256 digest in {encoding or 'HEX'}")
                if isinstance(a.get("regionCode"), str) and not REGION.match(a["regionCode"]):
                    errors.append(f"{at}.address.regionCode is not an ISO-3166-1 alpha-2 code")
                if a.get("postalCode") == "":
                    errors.append(f"{at}.address.postalCode is empty")
                extra = [key for key in ("addressLine", "city", "administrativeArea") if key in a]
                if extra and not analytics:
                    errors.append(f"{at}.address.{extra[0]} is for Google Analytics destinations only")

    def check_ads_create(self, body, errors):
        job = body.get("job") if isinstance(body, dict) else None
        if not isinstance(job, dict):
            return
        if job.get("type") != "CUSTOMER_MATCH_USER_LIST":  # revetl: its only job type
            errors.append("job.type is not CUSTOMER_MATCH_USER_LIST")
        meta = job.get("customerMatchUserListMetadata")
        user_list = meta.get("userList") if isinstance(meta, dict) else None
        if not isinstance(user_list, str) or not USER_LIST.match(user_list):
            errors.append("job.customerMatchUserListMetadata.userList is not customers/{cid}/userLists/{id}")

    def check_ads_operations(self, body, errors):
        ops = body.get("operations") if isinstance(body, dict) else None
        if not isinstance(ops, list):
            return
        total = 0
        kinds = set()
        for n, op in enumerate(ops):
            if len(errors) >= MAX_ERRORS or not isinstance(op, dict):
                break
            kinds.update(k for k in ("create", "remove", "removeAll") if op.get(k) is not None)
            data = op.get("create") if op.get("create") is not None else op.get("remove")
            if not isinstance(data, dict):
                continue
            ids = data.get("userIdentifiers")
            if not isinstance(ids, list) or not ids:
                errors.append(f"operations[{n}] has no userIdentifiers")
                continue
            total += len(ids)
            if len(ids) > ADS_MAX_IDENTIFIERS:
                errors.append(f"operations[{n}] has {len(ids)} identifiers, more than 20")
            for k, ident in enumerate(ids):
                if not isinstance(ident, dict):
                    continue
                at = f"operations[{n}].userIdentifiers[{k}]"
                for key in ("hashedEmail", "hashedPhoneNumber"):
                    if key in ident and not self.hashed(ident[key], "HEX"):
                        errors.append(f"{at}.{key} is not SHA-256 lower-case hex")
                a = ident.get("addressInfo")
                if not isinstance(a, dict):
                    continue
                for key in ("hashedFirstName", "hashedLastName", "hashedStreetAddress"):
                    if key in a and not self.hashed(a[key], "HEX"):
                        errors.append(f"{at}.addressInfo.{key} is not SHA-256 lower-case hex")
                if isinstance(a.get("countryCode"), str) and not REGION.match(a["countryCode"]):
                    errors.append(f"{at}.addressInfo.countryCode is not an ISO-3166-1 alpha-2 code")
        if total > ADS_MAX_REQUEST_IDS:
            errors.append(f"{total} user identifiers in one request, more than 100,000")
        if {"create", "remove"} <= kinds:  # revetl: one direction per request
            errors.append("create and remove operations mixed in one request")

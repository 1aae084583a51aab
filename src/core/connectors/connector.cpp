#include "core/connectors/connector.hpp"

#include "core/common/error.hpp"
#include "core/connectors/registry.hpp"

#include <algorithm>
#include <cstdio>

namespace revetl {

uint64_t Fnv1a(const std::string &data, uint64_t seed) {
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (unsigned char c : data) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    return h;
}

const char *OpName(Change::Op op) {
    return op == Change::Op::Remove ? "delete" : "upsert";
}

std::string Truncate(const std::string &text, size_t max_bytes) {
    size_t cut = std::min(max_bytes, text.size());
    // Back up to the start of a UTF-8 sequence when the cut falls inside one.
    while (cut > 0 && cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
        cut--;
    std::string out = text.substr(0, cut);
    for (char &c : out)
        if (c == '\n' || c == '\r' || c == '\0')
            c = ' ';
    return out;
}

std::string RecordIdempotencyKey(int64_t sync_id, const Change &change) {
    std::string material =
        std::to_string(sync_id) + "\x1f" + change.key + "\x1f" + std::to_string(change.version) + "\x1f" +
        (change.op == Change::Op::Remove ? std::string("delete") : std::to_string(change.row_hash));
    char buf[40];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(Fnv1a(material, 0)),
                  static_cast<unsigned long long>(Fnv1a(material, 0x9e3779b97f4a7c15ULL)));
    return buf;
}

std::unique_ptr<Connector> MakeConnector(const DestinationSettings &settings, SyncTarget target,
                                         const std::string &sync_name, const std::string &server_name) {
    const ConnectorSpec *spec = FindSpec(settings.type);
    if (!spec)
        throw Error(sqlstate::kFdwInvalidOptionValue, "unknown destination type \"" + settings.type + "\"");
    CheckSyncTarget(*spec, settings.server_options, target, sync_name, server_name);
    AuthKind auth = SelectedAuth(settings.credentials);
    if (!spec->AcceptsAuth(auth)) {
        std::vector<std::string> ways;
        for (AuthKind a : spec->auth)
            ways.push_back(AuthOptions(a));
        std::string list;
        for (size_t i = 0; i < ways.size(); i++)
            list += (i == 0 ? "" : i + 1 == ways.size() ? " or " : ", ") + ways[i];
        throw Error(
            sqlstate::kInvalidAuthorizationSpecification,
            "server \"" + server_name + "\" of type " + spec->type + " does not accept " +
                (auth == AuthKind::None ? std::string("requests without credentials")
                                        : std::string("auth scheme ") + AuthName(auth)),
            "The user mapping of the sync's owner (or PUBLIC) selects the auth scheme by its options.",
            "Give the user mapping " + list + ".");
    }
    return spec->make(settings, target);
}

} // namespace revetl

namespace revetl {

namespace {

RowOutcome ForgottenRemoval(const std::string &vendor, const std::string &code, const std::string &why,
                            const std::string &match_on) {
    RowOutcome o;
    o.error_code = code;
    o.reason = why + "; revetl reports this once and forgets the row";
    // The row may have reached the destination: a request whose answer was
    // lost (a timeout, a failed or killed run) may have created the record.
    o.hint = "If " + vendor + " has the record (a request revetl could not confirm may have created it), " +
             "remove it there by hand: look it up by " +
             (match_on.empty() ? std::string("the values") : "the " + Truncate(match_on, 100) + " value") +
             " the row with this key had.";
    o.unresolvable_removal = true;
    return o;
}

} // namespace

RowOutcome UnresolvableRemoval(const std::string &vendor, const std::string &id_name, const std::string &done,
                               const std::string &match_on) {
    return ForgottenRemoval(vendor, "NO_RECORD_ID",
                            "no " + id_name + " was ever learned for this row, so it cannot be " + done,
                            match_on);
}

RowOutcome UnusableRecordIdRemoval(const std::string &vendor, const std::string &problem,
                                   const std::string &match_on) {
    return ForgottenRemoval(vendor, "INVALID_RECORD_ID", problem, match_on);
}

std::optional<Verdict> TransientFailure(const HttpResponse &response, const std::string &vendor,
                                        const std::string &message) {
    const long status = response.status;
    if (!(status == 0 || status == 408 || status >= 500))
        return std::nullopt;
    Verdict v;
    v.kind = Verdict::Kind::Retry;
    v.error = status == 0 ? "could not reach " + vendor + ": " +
                                (response.timed_out ? std::string("timed out") : response.transport_error)
                          : vendor + " answered HTTP " + std::to_string(status) +
                                (message.empty() ? "" : ": " + Truncate(message, 300));
    return v;
}

std::optional<Verdict> ConnectionFailure(const HttpResponse &response, const std::string &url,
                                         bool url_names_a_record) {
    const std::string where = RedactUrl(url);
    std::string error;
    const long s = response.status;
    if (s == 401 || s == 403) {
        error = "destination " + where + " refused the credentials (HTTP " + std::to_string(s) +
                "): check the token or other secrets in the user mapping for this server, and that they "
                "allow this request";
    } else if (s >= 300 && s < 400) {
        auto location = response.Header("location");
        error = "destination " + where + " answered HTTP " + std::to_string(s) + " (a redirect" +
                (location ? " to " + RedactUrl(*location) : std::string()) +
                "): revetl follows no redirect; set the server's url to where the destination lives now";
    } else if (s == 404 && !url_names_a_record) {
        error = "destination " + where +
                " answered HTTP 404: nothing is there; check the server's url (its host and path)";
    } else if (s == 0 && response.transport_code == kTransportCouldNotResolve) {
        error = "could not resolve the host of " + where + ": check the server's url";
    } else if (s == 0 && response.transport_code == kTransportTls) {
        error = "TLS with " + where + " failed (" + response.transport_error +
                "): check the server's url and the destination's certificate";
    } else {
        return std::nullopt;
    }
    Verdict v;
    // 401: the credentials expired or were revoked. With OAuth the engine
    // refreshes the token once and replays; without, the run stops.
    v.kind = s == 401 ? Verdict::Kind::AuthExpired : Verdict::Kind::Fatal;
    v.error = error;
    return v;
}

} // namespace revetl

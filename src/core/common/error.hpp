// Errors raised by the pure C++ modules. They carry a PostgreSQL SQLSTATE, a
// message, a detail and a hint, so that the glue can turn them into an
// ereport() of exactly the shape PostgreSQL users expect, without the pure
// code ever including a PostgreSQL header.
#pragma once

#include <stdexcept>
#include <string>

namespace revetl {

namespace sqlstate {
inline constexpr const char *kInvalidParameterValue = "22023";
inline constexpr const char *kSyntaxError = "42601";
inline constexpr const char *kUndefinedObject = "42704";
inline constexpr const char *kUndefinedColumn = "42703";
inline constexpr const char *kDuplicateObject = "42710";
inline constexpr const char *kInsufficientPrivilege = "42501";
inline constexpr const char *kFdwInvalidOptionName = "HV00D";
inline constexpr const char *kFdwInvalidOptionValue = "HV024"; // fdw_invalid_attribute_value
inline constexpr const char *kFdwUnableToEstablishConnection = "HV00N";
inline constexpr const char *kConnectionFailure = "08006";
inline constexpr const char *kObjectNotInPrerequisiteState = "55000";
inline constexpr const char *kActiveSqlTransaction = "25001";
inline constexpr const char *kInternalError = "XX000";
inline constexpr const char *kFeatureNotSupported = "0A000";
inline constexpr const char *kInvalidAuthorizationSpecification = "28000";
// revetl's own class, RV: errors about syncs and their runs.
inline constexpr const char *kSyncRunFailed = "RV001";
} // namespace sqlstate

class Error : public std::runtime_error {
public:
    Error(std::string state, const std::string &message, std::string detail = {}, std::string hint = {})
        : std::runtime_error(message), sqlstate_(std::move(state)), detail_(std::move(detail)),
          hint_(std::move(hint)) {}

    const std::string &sqlstate() const { return sqlstate_; }
    const std::string &detail() const { return detail_; }
    const std::string &hint() const { return hint_; }

    // 1-based character position in `source()` where the error is, or 0.
    // The glue reports it as PostgreSQL's internal query position, so psql
    // draws a caret under the offending part of a sync statement.
    int position() const { return position_; }
    const std::string &source() const { return source_; }
    Error &At(int position, std::string source) {
        position_ = position;
        source_ = std::move(source);
        return *this;
    }

private:
    std::string sqlstate_;
    std::string detail_;
    std::string hint_;
    int position_ = 0;
    std::string source_;
};

} // namespace revetl

// What every connector does with a vendor's JSON answer and with a row's
// outcome: a value as text, a member of an object as text, a string written
// with its length (values may hold NUL bytes), and the bounded outcome of
// one row. One definition, so the bounds on what a destination may put into
// revetl.rejected_rows and the shadow state are the same for every vendor.
#pragma once

#include "core/delivery/change.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>

namespace revetl {

// A JSON value as text: a string as it is, true/false, "" for null (and for
// a missing member), anything else (numbers, objects, arrays) as compact
// JSON, so a number keeps the digits the vendor sent.
std::string JsonText(const rapidjson::Value &value);

// The member `name` of `object` as JsonText; "" when `object` is no object
// or has no such member.
std::string JsonMember(const rapidjson::Value &object, const char *name);

// A string written with its length rather than up to its first NUL.
void WriteJsonString(rapidjson::Writer<rapidjson::StringBuffer> &writer, const std::string &text);

// A row the destination refused: its HTTP status, its message (at most
// 1000 bytes) and its error code (at most 100 bytes), cut on a character
// boundary.
RowOutcome RejectedRow(long http_status, const std::string &reason, const std::string &code);

// A row the destination took, with the record id it named (at most 200
// bytes; "" when it named none).
RowOutcome AcceptedRow(long http_status, const std::string &dest_id = {});

} // namespace revetl
